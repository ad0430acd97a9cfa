"""onnxdecomp: cut ONNX classifiers into per-class modules and link them back together.

``onnxdecomp.decompose``, ``onnxdecomp.link`` and ``onnxdecomp.replace`` are the functions:
they are bound here on import, so the subpackages of the same names never shadow them (import
what else those hold with ``from onnxdecomp.decompose import ...``). ONNX Runtime is
imported only when a session is opened.
"""

from onnxdecomp.decompose import decompose
from onnxdecomp.link import link, replace
from onnxdecomp.version import __version__

__all__ = ["__version__", "decompose", "link", "replace"]
