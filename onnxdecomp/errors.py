"""User-facing errors: one line, no traceback, printed by the CLI as ``error: ...``."""


class OnnxDecompError(Exception):
    """A problem with the user's input (model, data, flags) that they can fix."""


class DataError(OnnxDecompError):
    """The data spec is missing, unreadable or does not fit the model."""


class RuntimeUnavailableError(OnnxDecompError):
    """ONNX Runtime is not installed, or the requested device cannot run."""


class UnsupportedOpError(OnnxDecompError):
    """An op on the channel path has no coupling rule; nothing is written."""
