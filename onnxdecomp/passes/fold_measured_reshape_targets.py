"""FoldMeasuredReshapeTargetsPass: Reshape targets that static folding could not evaluate,
measured by running the model at two batch sizes."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer
from onnxdecomp.runtime import run_values

_BATCHES = (2, 3)


class FoldMeasuredReshapeTargetsPass(ir.passes.InPlacePass):
    """Replace a computed Reshape target by the output shape ONNX Runtime gives it, the one
    dimension that changes with the batch as -1.

    ``FoldReshapeTargetsPass`` evaluates targets entry by entry and leaves one with two
    entries it cannot name: timm's MobileViT unfolds patches with
    ``x.reshape(B * patch_area, num_patches, -1)``, the batch multiplied and a -1 beside it,
    and past that Reshape shape inference loses the channel count. Run on zeros at batch 2
    and at batch 3, each such Reshape's output shape shows which dimensions are numbers (the
    same in both runs) and which one follows the batch: as a constant target of those numbers
    and -1, the Reshape computes the same at any batch, and the channel rules can read and
    patch it. A target with two dimensions that follow the batch is left as it is.

    Requires: shapes inferred; every graph input static but for its first (batch) axis;
    otherwise nothing is done. Ensures: such targets are initializers.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        pending = [n for n in model.graph if _computed_target(n)]
        feeds = _feeds(model) if pending else None
        if not pending or feeds is None:
            return ir.passes.PassResult(model, False)
        outputs = run_values(model, [n.outputs[0].name for n in pending], feeds)
        if outputs is None:  # a model that does not run keeps its targets
            return ir.passes.PassResult(model, False)
        modified = False
        for i, node in enumerate(pending):
            runs = [np.shape(out[i]) for out in outputs]
            if len({len(r) for r in runs}) != 1:
                continue
            varying = [a for a in range(len(runs[0])) if len({r[a] for r in runs}) > 1]
            if len(varying) > 1:
                continue
            target = np.array(runs[0], dtype=np.int64)
            target[varying] = -1
            node.replace_input_with(1, new_initializer(
                model.graph, f"{node.inputs[1].name}_measured", target))
            modified = True
        return ir.passes.PassResult(model, modified)


def _computed_target(node: ir.Node) -> bool:
    return (node.op_type == "Reshape" and is_default_domain(node.domain)
            and len(node.inputs) > 1 and node.inputs[1] is not None
            and const_array(node.inputs[1]) is None
            and not node.attributes.get_int("allowzero", 0))


def _feeds(model: ir.Model) -> list[dict[str, np.ndarray]] | None:
    """Zeros for every graph input at each batch size (one run when the batch is fixed);
    None when an input has another dynamic axis or no known type."""
    per_batch: list[dict[str, np.ndarray]] = []
    fixed = True
    for value in model.graph.inputs:
        if value.shape is None or value.dtype is None or len(value.shape) == 0:
            return None
        dims = list(value.shape)
        if not all(isinstance(d, int) for d in dims[1:]):
            return None
        fixed = fixed and isinstance(dims[0], int)
    for batch in _BATCHES[:1] if fixed else _BATCHES:
        feeds = {}
        for value in model.graph.inputs:
            dims = list(value.shape)
            size = dims[0] if isinstance(dims[0], int) else batch
            feeds[value.name] = np.zeros((size, *dims[1:]), value.dtype.numpy())
        per_batch.append(feeds)
    return per_batch

