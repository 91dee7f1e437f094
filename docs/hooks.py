"""mkdocs hook: the CLI reference page is generated from cnnattn's argument parsers at build time."""

MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    if MARKER not in markdown:
        return markdown
    from cnnattn.cli.reference import cli_reference

    return markdown.replace(MARKER, cli_reference())
