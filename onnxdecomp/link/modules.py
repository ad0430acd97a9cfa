"""The linker's inputs: module files or folders, each module with what it knows of itself.

A folder contributes its ``manifest.json``'s modules in the manifest's order; a file is a
module when it has one input, one ``[N, 1]`` output and the provenance ``decompose`` stamps
(class index, parent sha256); a tagger's module scores every step, [N, T, 1]. The
manifest beside a module file, when it lists that file, tells where the parent and the
calibration data are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from onnxdecomp import provenance
from onnxdecomp.decompose.manifest import FILE as MANIFEST
from onnxdecomp.decompose.manifest import read_manifest
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.modelio import read_model, sha256_bytes


@dataclass
class Module:
    """One module to link, and where it came from."""

    label: str  # how errors name it: its path, or "module i" for a proto
    proto: onnx.ModelProto
    class_index: int | None  # None: no onnxdecomp provenance (it links in parallel only)
    class_name: str
    parent_sha256: str | None
    num_classes: int | None
    manifest: dict | None = None  # the manifest.json that lists it
    manifest_path: Path | None = None

    @property
    def per_step(self) -> bool:
        """A tagger's module: it scores every step, [N, T, 1]."""
        return len(self.proto.graph.output[0].type.tensor_type.shape.dim) == 3

    @property
    def column(self) -> dict:
        """What the linked model records of this module's column."""
        return {"class_index": self.class_index, "class_name": self.class_name,
                "parent_sha256": self.parent_sha256, "source": os.path.basename(self.label)}


def read_modules(inputs: list[str | os.PathLike | onnx.ModelProto],
                 classes: list[int | str] | None = None) -> list[Module]:
    """The modules of ``inputs`` in the order given (a folder: in its manifest's order, or
    only those of ``classes``, indices or names, in that order)."""
    if not inputs:
        raise OnnxDecompError("link needs at least one module")
    if classes is not None and not any(
            not isinstance(s, onnx.ModelProto) and Path(s).is_dir() for s in inputs):
        raise OnnxDecompError("{classes} picks modules of the folders given, and none is: "
                              "give the folder, or leave out {classes} to link the files",
                              options=["classes"])
    modules: list[Module] = []
    found: set[int | str] = set()
    for src in inputs:
        if not isinstance(src, onnx.ModelProto) and Path(src).is_dir():
            folder = Path(src)
            if not (folder / MANIFEST).is_file():
                raise OnnxDecompError(f"{folder}: no {MANIFEST} in it; a folder to link is "
                                      "one that decompose wrote")
            entries = read_manifest(folder / MANIFEST)["modules"]
            if classes is not None:
                entries, hit = _select(entries, classes)
                found |= hit
            for entry in entries:
                modules.append(read_module(folder / entry["file"], len(modules)))
        else:
            modules.append(read_module(src, len(modules)))
    missing = [c for c in classes or [] if c not in found]
    if missing:
        raise OnnxDecompError(
            f"{{classes}} {','.join(map(str, missing))}: no module of the folders given has "
            "that class (index or name)", options=["classes"])
    return modules


def _select(entries: list[dict], classes: list[int | str]) -> tuple[list[dict], set]:
    """The manifest entries of ``classes`` (class indices or names), in their order, and
    the classes they matched."""
    chosen, hit = [], set()
    for c in classes:
        key = "class_index" if isinstance(c, int) else "class_name"
        for entry in entries:
            if entry.get(key) == c and entry not in chosen:
                chosen.append(entry)
                hit.add(c)
    return chosen, hit


def read_module(src: str | os.PathLike | onnx.ModelProto, index: int) -> Module:
    proto = read_model(src)
    label = f"module {index}" if isinstance(src, onnx.ModelProto) else str(src)
    if provenance.read_columns(proto) is not None:
        raise OnnxDecompError(f"{label} is a linked model, not a module: link the modules "
                              "it was linked from")
    if not len(proto.graph.input) or len(proto.graph.output) != 1:
        raise OnnxDecompError(f"{label}: a module has inputs and one output")
    out = proto.graph.output[0].type.tensor_type.shape.dim
    if len(out) not in (2, 3) or (out[-1].HasField("dim_value") and out[-1].dim_value != 1):
        raise OnnxDecompError(f"{label}: output is not a [N, 1] score (or a tagger's "
                              "[N, T, 1]); is it a module?")
    meta = provenance.module_identity(proto)
    num = {p.key: p.value for p in proto.metadata_props}.get(provenance.NUM_CLASSES)
    known = "class_index" in meta and "parent_sha256" in meta and num is not None
    module = Module(label, proto, int(meta["class_index"]) if known else None,
                    meta.get("class_name", ""), meta["parent_sha256"] if known else None,
                    int(num) if known else None)
    if not isinstance(src, onnx.ModelProto):
        _attach_manifest(module, Path(src))
    return module


def _attach_manifest(module: Module, path: Path) -> None:
    """The manifest beside the module file, when it lists this very file (by sha256)."""
    candidate = path.parent / MANIFEST
    if not candidate.is_file():
        return
    manifest = read_manifest(candidate)
    digest = sha256_bytes(path.read_bytes())
    if any(e.get("sha256") == digest for e in manifest["modules"]):
        module.manifest, module.manifest_path = manifest, candidate
