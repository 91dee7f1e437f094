"""Deployment: export to ONNX, ``torch.export`` programs and TorchScript, each verified against eager PyTorch."""

from .export import FORMATS, ExportError, ExportResult, export

__all__ = ["FORMATS", "ExportError", "ExportResult", "export"]
