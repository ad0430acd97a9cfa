"""Decomposition: profile the parent once, then build one module per class.

``settings`` what is asked; ``parent`` the normalised, analysed parent; ``profile`` the one
streaming pass over calibration data (``columns`` its least-squares rows); ``criteria`` which
units a class keeps; ``compensate`` and ``sequential`` how the next layer makes up for what
went; ``tune``, ``refine``, ``polish`` and ``allocate`` how large each module is; ``head`` its
log-odds output; ``fidelity`` how close it stays; ``manifest`` what was written;
``decomposer`` ties them, and ``run`` decomposes every class and writes the modules.
"""

from onnxdecomp.decompose.decomposer import BuiltModule, Decomposer
from onnxdecomp.decompose.manifest import Manifest, ModuleEntry, ParentEntry
from onnxdecomp.decompose.parent import Parent, kernel_fraction, load_parent
from onnxdecomp.decompose.run import decompose
from onnxdecomp.decompose.settings import COMPENSATIONS, DEFAULT_FIDELITY, KEEP_GRID, Settings

__all__ = [
    "COMPENSATIONS",
    "DEFAULT_FIDELITY",
    "KEEP_GRID",
    "BuiltModule",
    "Decomposer",
    "Manifest",
    "ModuleEntry",
    "Parent",
    "ParentEntry",
    "Settings",
    "decompose",
    "kernel_fraction",
    "load_parent",
]
