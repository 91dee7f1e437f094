"""The error raised for missing or malformed data."""

__all__ = ["DataError"]


class DataError(ValueError):
    """Data that is missing or not in the expected layout; the message names the path and the layout."""
