"""The linker: modules, from one model or several, into one model that ONNX Runtime runs.

``linker`` (modes), ``modules`` (inputs and their manifests), ``union`` (sub-task models),
``merge`` (side by side), ``combine`` (score combiners), ``calibration`` (parents and data),
``replace`` (classes of a model decided by other modules), ``output`` (scores, label,
metadata).
"""

from onnxdecomp.link.combine import COMBINERS, ROUTERS
from onnxdecomp.link.linker import MODES, LinkResult, link, link_parallel
from onnxdecomp.link.replace import replace
from onnxdecomp.link.select_classes import SCORES

__all__ = ["COMBINERS", "MODES", "ROUTERS", "SCORES", "LinkResult", "link", "link_parallel",
           "replace"]
