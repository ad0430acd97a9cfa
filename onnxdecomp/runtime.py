"""The one place that opens ONNX Runtime sessions.

Device choice: ``auto`` takes CUDA when a session really gets it (checked with
``session.get_providers()``, since onnxruntime-gpu silently falls back to CPU), else CPU;
``cuda`` is strict and fails with a clear message; ``cpu`` is plain CPU.
Batching: any number of samples, in batches; models whose batch dimension is fixed (e.g. 1)
are fed exactly that many samples per run, the last batch padded and trimmed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp.data.records import fields, is_records
from onnxdecomp.errors import (
    DataError,
    OnnxDecompError,
    RuntimeFailure,
    RuntimeUnavailableError,
    UnsupportedModelError,
    first_line,
)
from onnxdecomp.irutil import (
    RNN_GATES,
    input_batch_axis,
    is_default_domain,
    to_proto,
    with_outputs,
)
from onnxdecomp.modelio import runtime_source
from onnxdecomp.unrolled_rnn import reroll, shares_matmul_weights

DEVICES = ("auto", "cpu", "cuda")


def check_device(device: object) -> None:
    """One line for a device that is not one of ``DEVICES``."""
    if device not in DEVICES:
        raise OnnxDecompError(f"unknown {{device}} {device!r}: choose one of "
                              f"{', '.join(DEVICES)}", options=["device"])


_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def import_ort():
    """Import onnxruntime or fail with one line saying which extra to install."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
        raise RuntimeUnavailableError(
            "onnxruntime is not installed: pip install 'onnxdecomp[cpu]' "
            "(or 'onnxdecomp[gpu]' for CUDA; never both)"
        ) from exc
    return ort


@dataclass(frozen=True)
class InputSpec:
    """The model's input as the data comes: ``shape`` with the samples first; ``batch_axis``
    where the model takes them (1 for a sequence [T, N] read by a steps-first recurrent
    layer: the Runner moves that axis when it feeds a batch)."""

    name: str
    shape: tuple  # ints, or str/None for symbolic dimensions
    dtype: type
    batch_axis: int = 0

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model insists on, or None when the batch axis is dynamic."""
        if not self.shape:
            return None
        b = self.shape[0]
        return b if isinstance(b, int) and b > 0 else None


def _model_bytes(model: str | os.PathLike | bytes | onnx.ModelProto
                 ) -> tuple[bytes | str, onnx.ModelProto]:
    """What ORT loads, and the proto (large external tensors unread) for the input's axes."""
    if isinstance(model, onnx.ModelProto):
        return model.SerializeToString(), model
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), onnx.ModelProto.FromString(bytes(model))
    # one-line errors for what is not a model, before ORT; ORT reads the file itself
    return runtime_source(model)


def proto_batch_axes(proto: onnx.ModelProto) -> dict[str, int]:
    """Where each graph input holds the samples (``irutil.input_batch_axis``), by name; only
    a model with a recurrent layer can take them elsewhere than on axis 0 (one unrolled into
    per-step MatMuls of one weight, dynamo's ``nn.RNN``, is rolled up first, on a copy)."""
    ops = {n.op_type for n in proto.graph.node if is_default_domain(n.domain)}
    if not ops & set(RNN_GATES) and not shares_matmul_weights(
            [n.input[1] for n in proto.graph.node if n.op_type == "MatMul" and len(n.input) > 1]):
        return {}
    model = ir.serde.deserialize_model(proto)
    if not ops & set(RNN_GATES) and not reroll(model):
        return {}
    return {v.name: input_batch_axis(v) for v in model.graph.inputs}


def proto_batch_axis(proto: onnx.ModelProto) -> int:
    """Where the first graph input holds the samples (``proto_batch_axes``)."""
    first = next(iter(proto.graph.input), None)
    return proto_batch_axes(proto).get(first.name, 0) if first is not None else 0


class Runner:
    """An ONNX Runtime session on the chosen device, with batched inference."""

    def __init__(
        self,
        model: str | os.PathLike | bytes | onnx.ModelProto,
        device: str = "auto",
        probe: bool = False,
        threads: int | None = None,
    ) -> None:
        """``probe``: the model outputs intermediate values (``irutil.with_outputs`` or
        ``only_outputs``). ORT's layout optimisations (level ALL) can fuse such a value away
        and then fail to load (onnxruntime 1.31: a Conv feeding a residual Add in a pruned
        module), so a probe stops at the EXTENDED level; a probe may take several inputs
        (a subgraph cut at cached values, ``run_feeds``). ``threads``: ONNX Runtime's intra-op
        threads (None: its default, all cores), for latency measurements."""
        check_device(device)
        ort = import_ort()
        opts = ort.SessionOptions()
        # ORT logs a failed load or run in colour over several lines; the one-line error
        # that follows says it (the GPU build logs CUDA load failures loudly too)
        opts.log_severity_level = 4
        if threads:
            opts.intra_op_num_threads = threads
        if probe:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        src, proto = _model_bytes(model)
        available = ort.get_available_providers()
        want_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
        if device == "cuda" and not want_cuda:
            raise RuntimeUnavailableError(
                "{device} cuda: this onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)}); install 'onnxdecomp[gpu]'",
                options=["device"])
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else [
            "CPUExecutionProvider"
        ]
        try:
            self.session = ort.InferenceSession(src, sess_options=opts, providers=providers)
        except Exception as exc:  # ORT raises its own types; give one line
            raise RuntimeFailure(
                f"ONNX Runtime cannot load the model: {first_line(exc)}") from exc
        self.providers = list(self.session.get_providers())
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        if device == "cuda" and self.device != "cuda":
            raise RuntimeUnavailableError(
                "{device} cuda: CUDA did not start in ONNX Runtime (session fell back to CPU); "
                "check the CUDA/cuDNN libraries", options=["device"])
        inputs = self.session.get_inputs()
        for what, values in (("input", inputs), ("output", self.session.get_outputs())):
            if not values:  # a classifier takes samples and gives scores
                raise UnsupportedModelError(f"the model has no {what}: a classifier with an "
                                            "input and an output of class scores is expected")
        axes = proto_batch_axes(proto)
        specs = []
        for i in inputs:
            if i.type not in _ORT_DTYPES:
                raise OnnxDecompError(f"model input {i.name!r} has unsupported type {i.type}")
            shape = list(i.shape)
            axis = axes.get(i.name, 0) if len(shape) > 1 else 0
            shape.insert(0, shape.pop(axis))
            specs.append(InputSpec(i.name, tuple(shape), _ORT_DTYPES[i.type], axis))
        self.inputs = tuple(specs)
        self.input = specs[0]  # the first, which one-input models' callers read
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run_feeds(self, feeds: dict[str, np.ndarray], outputs: Sequence[str],
                  batch_axes: dict[str, int] | None = None,
                  batch_size: int = 256) -> list[np.ndarray]:
        """A probe's ``outputs`` from named input arrays (a cut subgraph's inputs, which
        may be several), batched along each array's ``batch_axes`` entry (0 by default);
        the batch axis must be dynamic."""
        axes = batch_axes or {}
        specs = {spec.name: spec for spec in self.inputs}
        first = next(iter(feeds))
        n = feeds[first].shape[0 if is_records(feeds[first]) else axes.get(first, 0)]

        def rows(name: str, arr: np.ndarray, start: int, stop: int) -> np.ndarray:
            if is_records(arr):  # the samples of a model with several inputs: this one's
                return _fed_as(arr[name][start:stop], specs[name])
            index = [slice(None)] * arr.ndim
            index[axes.get(name, 0)] = slice(start, stop)
            if name == self.input.name and name not in axes:
                return _fed_as(arr[tuple(index)], self.input)
            return np.ascontiguousarray(arr[tuple(index)])

        bs = max(1, int(batch_size))
        parts = [self._session_run(list(outputs), {
            name: rows(name, arr, start, min(start + bs, n)) for name, arr in feeds.items()})
            for start in range(0, n, bs)]
        return _joined(parts, list(outputs), axes)

    def _session_run(self, names: list[str] | None,
                     feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(names, feed)
        except Exception as exc:  # ORT's own types; one line
            raise RuntimeFailure(f"ONNX Runtime failed to run the model: "
                                 f"{first_line(exc)}") from exc

    def _feed(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """A batch of samples (samples first; records for several inputs) as the model's
        inputs take them (``_fed_as``)."""
        if is_records(batch) and len(self.inputs) == 1:
            batch = batch[self._one_input_field(batch.dtype.names)]
        parts = fields(batch) if is_records(batch) else {self.input.name: batch}
        return {spec.name: _fed_as(parts[spec.name], spec) for spec in self.inputs}

    def _one_input_field(self, names: Sequence[str]) -> str | None:
        """The records' field a one-input model takes: its input's, else ``x`` (an .npz's
        ``x`` beside arrays it does not take), else None."""
        for field in (self.input.name, "x"):
            if field in names:
                return field
        return None

    def check_input(self, x: np.ndarray) -> None:
        """One-line errors for data that does not fit the model's inputs: one array for a
        one-input model, records with a field named after each input for several."""
        if x.shape[0] == 0:
            raise DataError("data is empty: no samples")
        names = [spec.name for spec in self.inputs]
        if not is_records(x):
            if len(names) > 1:
                raise DataError(
                    f"the model has {len(names)} inputs ({', '.join(names)}) but the data "
                    "is one array: give an .npz with one array per input, named after it")
            _check_array(x, self.input, float_ok=False)
            return
        field = self._one_input_field(x.dtype.names) if len(names) == 1 else None
        if field is not None:
            _check_array(x[field], self.input, float_ok=True)
            return
        if sorted(x.dtype.names) != sorted(names):
            raise DataError(
                f"the data's arrays ({', '.join(x.dtype.names)}) are not the model's inputs "
                f"({', '.join(names)}): name each .npz array after its input")
        for spec in self.inputs:
            _check_array(x[spec.name], spec, float_ok=True)

    def iter_batches(
        self,
        x: np.ndarray,
        batch_size: int = 256,
        outputs: Sequence[str] | None = None,
        batch_axes: dict[str, int] | None = None,
    ) -> Iterator[tuple[int, int, list[np.ndarray]]]:
        """Yield ``(start, stop, outputs)`` over ``x`` in batches; memory stays bounded.
        ``batch_axes``: outputs whose batch axis is not 0 (a recurrent layer's Y [T, D, N, H])."""
        self.check_input(x)
        fixed = self.input.fixed_batch
        bs = fixed or max(1, int(batch_size))
        names = list(outputs) if outputs is not None else None
        n = x.shape[0]
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            batch = x[start:stop]
            if fixed and batch.shape[0] < fixed:  # pad the last batch of a fixed-batch model
                pad = np.zeros((fixed - batch.shape[0], *batch.shape[1:]), dtype=batch.dtype)
                batch = np.concatenate([batch, pad])
            res = self._session_run(names, self._feed(batch))
            axes = [(batch_axes or {}).get(name, 0) for name in
                     (names or [o.name for o in self.session.get_outputs()])]
            yield start, stop, [r if r.shape[a] == stop - start else
                                np.take(r, np.arange(stop - start), axis=a)
                                for r, a in zip(res, axes)]

    def run(
        self,
        x: np.ndarray,
        batch_size: int = 256,
        outputs: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        batch_axes: dict[str, int] | None = None,
    ) -> list[np.ndarray]:
        """Run all of ``x`` and return the requested outputs, concatenated over batches
        (along each output's ``batch_axes`` entry, 0 by default)."""
        parts: list[list[np.ndarray]] = []
        for start, stop, res in self.iter_batches(x, batch_size, outputs, batch_axes):
            parts.append(res)
            if progress:
                progress(stop - start)
        names = list(outputs) if outputs is not None else [
            o.name for o in self.session.get_outputs()]
        return _joined(parts, names, batch_axes or {})


def run_values(model: ir.Model, names: list[str],
               feeds: Sequence[dict[str, np.ndarray]]) -> list[list] | None:
    """The values ``names`` of ``model`` (intermediate ones too) for each of ``feeds``, from
    one ONNX Runtime session on the CPU; None where the model does not load or run."""
    try:
        runner = Runner(with_outputs(to_proto(model), names), device="cpu", probe=True)
        return [runner.session.run(names, feed) for feed in feeds]
    except Exception:  # noqa: BLE001 - the callers fall back to what they had
        return None


def _joined(parts: list[list[np.ndarray]], names: list[str],
            batch_axes: dict[str, int]) -> list[np.ndarray]:
    """Each output's batches concatenated along its batch axis (0 unless ``batch_axes``
    says otherwise)."""
    return [np.concatenate([p[i] for p in parts], axis=batch_axes.get(name, 0))
            for i, name in enumerate(names)]


def _fed_as(arr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """An input's samples (samples first) as ``spec`` takes them: the samples on its batch
    axis, float data in its float type."""
    if arr.dtype != spec.dtype and arr.dtype.kind == "f" and np.dtype(spec.dtype).kind == "f":
        arr = arr.astype(spec.dtype)
    return np.ascontiguousarray(np.moveaxis(arr, 0, spec.batch_axis))


def _check_array(x: np.ndarray, spec: InputSpec, float_ok: bool) -> None:
    """One-line errors for an input's samples ``x`` that do not fit ``spec``; ``float_ok``:
    float data for a float input of another width passes (the Runner casts it)."""
    if x.ndim != len(spec.shape):
        raise DataError(
            f"input rank mismatch: data has shape {tuple(x.shape)}, model input "
            f"{spec.name!r} expects {_fmt_shape(spec.shape)}"
        )
    for axis, (have, want) in enumerate(zip(x.shape[1:], spec.shape[1:]), start=1):
        if isinstance(want, int) and want > 0 and have != want:
            hint, options = _image_hint(x.shape, spec.shape)
            raise DataError(
                f"input shape mismatch on axis {axis}: data has shape {tuple(x.shape)}, "
                f"model input {spec.name!r} expects {_fmt_shape(spec.shape)}{hint}",
                options=options)
    if x.dtype != spec.dtype and not (float_ok and x.dtype.kind == "f" and
                                      np.dtype(spec.dtype).kind == "f"):
        raise DataError(
            f"input dtype mismatch: data is {x.dtype}, model input {spec.name!r} expects "
            f"{np.dtype(spec.dtype).name} (use {{dtype}} to convert)", options=["dtype"])


def _image_hint(have: tuple, want: tuple) -> tuple[str, list[str]]:
    """For images ([N, C, H, W] or [N, H, W, C], C 1 or 3, on both sides) that differ in
    size or channels: the options that would make image data fit, else ("", [])."""
    def split(shape: tuple) -> tuple | None:  # (C, (H, W)) of an image shape
        if len(shape) != 4:
            return None
        if shape[1] in (1, 3):
            return shape[1], tuple(shape[2:])
        return (shape[3], tuple(shape[1:3])) if shape[3] in (1, 3) else None

    data, model = split(tuple(have)), split(tuple(want))
    if data is None or model is None or not all(
            isinstance(d, int) and d > 0 for d in (model[0], *model[1])):
        return "", []
    fixes = []
    if data[1] != model[1]:
        fixes.append(f"{{resize}} {model[1][0]},{model[1][1]}")
    if data[0] != model[0]:
        fixes.append(f"{{channels}} {model[0]}")
    if not fixes:
        return "", []
    return f" (image data: {' '.join(fixes)})", ["resize", "channels"]


def _fmt_shape(shape: tuple) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else "N" for d in shape) + "]"
