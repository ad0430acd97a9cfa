"""Graph passes over onnx-ir models, one concern per file, named ``<Verb><Object>Pass``."""

from onnxdecomp.passes.canonicalize_flatten import CanonicalizeFlattenPass
from onnxdecomp.passes.fold_batchnorm import FoldBatchNormIntoConvPass
from onnxdecomp.passes.fold_constants import FoldConstantsPass
from onnxdecomp.passes.fuse_matmul_add import FuseMatMulAddIntoGemmPass
from onnxdecomp.passes.remove_dropout import RemoveDropoutPass
from onnxdecomp.passes.strip_output_softmax import StripOutputSoftmaxPass

__all__ = [
    "CanonicalizeFlattenPass",
    "FoldBatchNormIntoConvPass",
    "FoldConstantsPass",
    "FuseMatMulAddIntoGemmPass",
    "RemoveDropoutPass",
    "StripOutputSoftmaxPass",
]
