"""The ``onnxdecomp`` command line: ``main`` (the group and its one error handler), one file
per command, ``options`` shared between them."""

from onnxdecomp.cli.main import main

__all__ = ["main"]
