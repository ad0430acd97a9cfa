"""Provenance in the models we emit: the ``metadata_props`` keys, written and read here only.

A module carries where it came from (parent sha256, class, what was kept, how it was
calibrated), so it stays traceable once copied away from its manifest; a linked model
carries what it was linked from.
"""

from __future__ import annotations

import json

import onnx

from onnxdecomp.version import __version__

PREFIX = "onnxdecomp."
VERSION = PREFIX + "version"
PARENT_SHA256 = PREFIX + "parent_sha256"
CLASS_INDEX = PREFIX + "class_index"
CLASS_NAME = PREFIX + "class_name"
NUM_CLASSES = PREFIX + "num_classes"
KEPT = PREFIX + "kept"  # JSON: kept_channels, kept_kernels, params/macs fractions, keep_ratio
CALIBRATION = PREFIX + "calibration"  # JSON: samples, criterion, compensation, targets, seed
LINK = PREFIX + "link"  # JSON: mode, parts, combiner, held-out accuracies
COLUMNS = PREFIX + "columns"  # JSON: per output column {class_index, class_name, parent_sha256,
#                               source}
# "C,H,W": the input size MACs are counted at, for a model whose input size is dynamic (the
# calibration samples'). It describes the graph, so restamping keeps it.
MACS_AT = PREFIX + "macs_at"

# What a linked model records of each module it was built from.
_IDENTITY = (CLASS_INDEX, CLASS_NAME, PARENT_SHA256)


def stamp(proto: onnx.ModelProto, meta: dict[str, str]) -> None:
    """Replace the model's metadata by ``meta`` (``MACS_AT`` stays) and name onnxdecomp as
    its producer."""
    kept = {p.key: p.value for p in proto.metadata_props if p.key == MACS_AT}
    del proto.metadata_props[:]
    for key, value in {**meta, **kept}.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name, proto.producer_version = "onnxdecomp", __version__


def module_meta(parent_sha256: str, class_index: int, class_name: str, num_classes: int,
                kept: dict, calibration: dict) -> dict[str, str]:
    """The metadata of a module, in the order it is written."""
    return {
        VERSION: __version__,
        PARENT_SHA256: parent_sha256,
        CLASS_INDEX: str(class_index),
        CLASS_NAME: class_name,
        NUM_CLASSES: str(num_classes),
        KEPT: json.dumps(kept),
        CALIBRATION: json.dumps(calibration),
    }


def link_meta(columns: list[dict], info: dict) -> dict[str, str]:
    """The metadata of a linked model: its columns' classes and how it was linked."""
    return {VERSION: __version__, COLUMNS: json.dumps(columns), LINK: json.dumps(info)}


def read_columns(proto: onnx.ModelProto) -> list[dict] | None:
    """The columns a linked model records, or None for any other model."""
    meta = {p.key: p.value for p in proto.metadata_props}
    return json.loads(meta[COLUMNS]) if COLUMNS in meta else None


def read_link(proto: onnx.ModelProto) -> dict | None:
    """How a linked model was linked, or None for any other model."""
    meta = {p.key: p.value for p in proto.metadata_props}
    return json.loads(meta[LINK]) if LINK in meta else None


def module_identity(proto: onnx.ModelProto) -> dict[str, str]:
    """class_index, class_name and parent_sha256 of a module, those it has."""
    meta = {p.key: p.value for p in proto.metadata_props}
    return {key[len(PREFIX):]: meta[key] for key in _IDENTITY if key in meta}


def macs_at(proto: onnx.ModelProto) -> tuple[int, ...] | None:
    """The input size (without the batch axis) a model's MACs are counted at, if recorded."""
    value = {p.key: p.value for p in proto.metadata_props}.get(MACS_AT)
    try:
        return tuple(int(v) for v in value.split(",")) if value else None
    except ValueError:
        return None
