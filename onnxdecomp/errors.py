"""User-facing errors: one line, no traceback, printed by the CLI as ``error: ...``.

A message that concerns an argument names it as a placeholder, ``{fidelity}``, listed in
``options``: the library renders it as the API's parameter name (``fidelity``), the command
line as its flag (``--fidelity``). The library never spells a flag itself.

Each kind has the exit code the command line ends with (README, "Errors"): 1 the user's
input (files, data, settings), 3 a model this tool does not support, 4 a runtime failure
(ONNX Runtime or CUDA). Click's own usage errors exit 2, anything unforeseen 5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class OnnxDecompError(Exception):
    """A problem with the user's input (model, data, settings) that they can fix."""

    exit_code = 1

    def __init__(self, message: str, *, options: Sequence[str] = ()) -> None:
        self.template = message
        self.options = tuple(options)
        super().__init__(self.render())

    def render(self, spell: Callable[[str], str] = str) -> str:
        """The message with each ``{option}`` spelled by ``spell`` (the name by default)."""
        text = self.template
        for name in self.options:
            text = text.replace("{" + name + "}", spell(name))
        return text


class DataError(OnnxDecompError):
    """The data spec is missing, unreadable or does not fit the model."""


class UnsupportedModelError(OnnxDecompError):
    """A valid model that this tool cannot handle (an op without a rule, a layout)."""

    exit_code = 3


class UnsupportedOpError(UnsupportedModelError):
    """An op on the channel path has no coupling rule; nothing is written."""


class RuntimeFailure(OnnxDecompError):
    """ONNX Runtime failed: not installed, cannot load or run the model, no CUDA."""

    exit_code = 4


class RuntimeUnavailableError(RuntimeFailure):
    """ONNX Runtime is not installed, or the requested device cannot run."""


INTERNAL_EXIT = 5  # an exception that is not one of these: a bug, reported in one line


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def node_error(node, why: str) -> UnsupportedOpError:
    """An UnsupportedOpError naming the node (anything with ``name`` and ``op_type``)."""
    return UnsupportedOpError(f"node {node.name!r} ({node.op_type}): {why}")
