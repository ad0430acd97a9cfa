"""The linker: modules, from one model or several, into one model that ONNX Runtime runs."""

from onnxdecomp.link.linker import MODES, link
from onnxdecomp.link.parallel import SCORES, link_parallel

__all__ = ["MODES", "SCORES", "link", "link_parallel"]
