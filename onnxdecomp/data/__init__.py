"""The data layer every command uses: read a data spec into model-ready arrays and check it.

``readers`` parse the raw formats, ``preprocess`` turns images into model input, ``dataset``
holds the result and its checks, ``load`` picks the reader for a spec.
"""

from onnxdecomp.data.dataset import (
    Dataset,
    check_dataset,
    check_label_shape,
    check_labels,
    labelled_steps,
    require_labels,
    unlabelled,
)
from onnxdecomp.data.load import SPLITS, DataSpec, load_data
from onnxdecomp.data.preprocess import LAYOUTS, Preprocess, apply_preprocess, fit_to_input
from onnxdecomp.data.readers import read_idx, read_image_tree

__all__ = [
    "LAYOUTS",
    "SPLITS",
    "DataSpec",
    "Dataset",
    "Preprocess",
    "apply_preprocess",
    "check_dataset",
    "check_label_shape",
    "check_labels",
    "fit_to_input",
    "labelled_steps",
    "load_data",
    "read_idx",
    "read_image_tree",
    "require_labels",
    "unlabelled",
]
