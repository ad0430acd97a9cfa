"""Architectures beyond the shared cases, each exported by both torch exporters: the idioms
other codebases and exporters write (channels-last input and flatten, ``x.view(N, -1)``,
chunk and channel shuffle, squeeze-excitation through dense layers, dense blocks, LayerNorm
over features, 1-D convolutions over flattened positions, inverted residuals, ConvNeXt's
pointwise layers on a channels-last map, a transformer encoder: attention pinned, its
feed-forward layer pruned; a ViT with its class token concatenated before the patches;
SENet's ``expand_as``, ``repeat``, clamps and ``F.normalize``, einsum dense layers and
einsum attention, a
ResNeXt block's grouped conv, AlexNet's towers with PyTorch's LocalResponseNorm;
DepthToSpace and SpaceToDepth, hand-built; a CRNN's conv map read as columns into an LSTM;
SKNet's selective kernel, its attention softmaxed over the stacked paths; EfficientViT's
linear attention, q, k and v cut inside each head).

For each: the module of class 0 with nothing pruned reproduces the parent's log-odds to 1e-5,
a module at keep 0.5 (align 1) really loses channels, passes the full checker and runs.
Random weights: fidelity is not the point here, coverage of the rules is.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import (
    assert_export_decomposes,
    assert_full_module_exact,
    build_sklearn_like,
    float16_model,
    ort_run,
    quiet,
    torch_export,
)
from onnx import helper

from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.errors import UnsupportedOpError
from onnxdecomp.passes import select_scores_output
from onnxdecomp.passes.unfuse_runtime_ops import FUSED
from onnxdecomp.stats import model_stats

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional
from models.nets import random_batchnorm  # noqa: E402 - torch first: skipped without it

HW = 16


def cbr(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act=nn.ReLU):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), act()]


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act=nn.ReLU6) -> None:
        super().__init__()
        hidden = cin * 4
        self.body = nn.Sequential(*cbr(cin, hidden, 1, act=act),
                                  *cbr(hidden, hidden, 3, stride, hidden, act=act),
                                  nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2ish(nn.Module):
    """ReLU6 (Clip), Hardswish, depthwise convs, inverted residuals, dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Sequential(*cbr(3, 8, 3, 2, act=nn.ReLU6), InvertedResidual(8, 8, 1),
                               InvertedResidual(8, 16, 2),
                               InvertedResidual(16, 16, 1, act=nn.Hardswish),
                               *cbr(16, 32, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1),
                               nn.Flatten(), nn.Dropout(0.2))
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.f(x))


class SqueezeExcite(nn.Module):
    """Squeeze-excitation through Linear layers: [N, C] -> view(N, C, 1, 1) -> Mul."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 16, act=nn.SiLU))
        self.a, self.b = nn.Linear(16, 4), nn.Linear(4, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        y = self.c(x)
        n, c = y.shape[:2]
        w = torch.sigmoid(self.b(F.relu(self.a(y.mean((2, 3)))))).view(n, c, 1, 1)
        return self.head((y * w).mean((2, 3)))


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: chunk into halves, one branch convolved, concat, shuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(*cbr(3, 16))
        self.b = nn.Sequential(*cbr(8, 8, 1))
        self.d = nn.Sequential(*cbr(16, 16))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        left, right = self.a(x).chunk(2, dim=1)
        y = torch.cat([left, self.b(right)], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.d(y), 1), 1))


class ShuffleChain(nn.Module):
    """Six ShuffleNetV2 units in a row, as torchvision's stages chain them: TorchScript
    computes each unit's chunk bounds from the shape of the last unit's shuffle, which
    shape inference knows only once that shuffle's Reshape target is folded, a round of
    folding per unit."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*cbr(3, 16))
        self.units = nn.ModuleList(nn.Sequential(*cbr(8, 8, 1)) for _ in range(6))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        y = self.stem(x)
        for unit in self.units:
            left, right = y.chunk(2, dim=1)
            y = torch.cat([left, unit(right)], 1)
            n, c, h, w = y.size()
            y = y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class DenseBlock(nn.Module):
    """DenseNet: every layer's output concatenated to its input; a transition."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*cbr(3, 8))
        self.l1, self.l2 = nn.Sequential(*cbr(8, 4)), nn.Sequential(*cbr(12, 4))
        self.t = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 1),
                               nn.AvgPool2d(2))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([x, self.l1(x)], 1)
        x = torch.cat([x, self.l2(x)], 1)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.t(x), 1), 1))


class ChannelsLast(nn.Module):
    """Keras' layout: the input [N, H, W, C] transposed in, channels-last flatten out."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 8, stride=2), *cbr(8, 12, stride=2))
        self.fc, self.head = nn.Linear(12 * 16, 16), nn.Linear(16, 5)

    def forward(self, x):
        y = self.c(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.head(F.relu(self.fc(y.reshape(y.shape[0], -1))))


class FlattenAffine(nn.Module):
    """A conv map flattened into features, then per-feature affines before the dense layer:
    BatchNorm1d (Keras' Flatten then BatchNormalization) and a learned scale and shift (the
    Mul and Add tf2onnx folds such a BatchNormalization into)."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 8), nn.MaxPool2d(2), *cbr(8, 8), nn.MaxPool2d(2))
        self.bn = nn.BatchNorm1d(8 * 16)
        self.scale = nn.Parameter(torch.rand(8 * 16) + 0.5)
        self.shift = nn.Parameter(torch.randn(8 * 16) * 0.1)
        self.fc = nn.Linear(8 * 16, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        y = self.bn(torch.flatten(self.c(x), 1)) * self.scale + self.shift
        return self.head(torch.relu(self.fc(y)))


class ViewFlatten(nn.Module):
    """``x.view(x.size(0), -1)`` into a dense layer; LeakyReLU, ELU, GELU, PReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 8, act=lambda: nn.LeakyReLU(0.1)),
                               nn.MaxPool2d(2, ceil_mode=True), *cbr(8, 8, act=nn.ELU),
                               nn.MaxPool2d(2))
        self.fc = nn.Sequential(nn.Linear(8 * 16, 16), nn.GELU(), nn.Linear(16, 16),
                                nn.PReLU())
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        y = self.c(x)
        return self.head(self.fc(y.view(y.size(0), -1)))


class WindowPad(nn.Module):
    """torchvision's Swin windows: a channels-last map padded to whole windows by amounts
    computed from its shape (``F.pad``), cut into windows, a dense layer over each
    window's positions, the windows regrouped per sample by a view whose first entry is
    the batch divided by the windows' count."""

    def __init__(self, window: int = 5) -> None:
        super().__init__()
        self.window = window
        self.c = nn.Sequential(*cbr(3, 16))
        self.fc, self.head = nn.Linear(16, 16), nn.Linear(16, 5)

    def forward(self, x):
        y = self.c(x).permute(0, 2, 3, 1)
        w = self.window
        n, h, wd, c = y.shape
        y = F.pad(y, (0, 0, 0, (w - wd % w) % w, 0, (w - h % w) % w))
        _, hp, wp, _ = y.shape
        y = y.view(n, hp // w, w, wp // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)
        y = F.relu(self.fc(y))
        windows = (hp // w) * (wp // w)
        y = y.view(y.size(0) // windows, windows, w * w, c)
        return self.head(y.mean((1, 2)))


class PatchUnfold(nn.Module):
    """timm's MobileViT: a map unfolded into patches, ``reshape(B * C * nh, p, nw, p)``,
    then ``reshape(B * p * p, nh * nw, -1)`` (the batch multiplied, a -1 beside it), a dense
    layer over the channels of every position of every patch."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 16))
        self.fc, self.head = nn.Linear(16, 16), nn.Linear(16, 5)

    def forward(self, x):
        y = self.c(x)
        b, c, h, w = y.shape
        p = 2
        nh, nw = h // p, w // p
        y = y.reshape(b * c * nh, p, nw, p).transpose(1, 2)
        y = y.reshape(b, c, nh * nw, p * p).transpose(1, 3).reshape(b * p * p, nh * nw, -1)
        y = F.relu(self.fc(y))
        return self.head(y.reshape(b, p * p, nh * nw, -1).mean((1, 2)))


class DepthMultiplier(nn.Module):
    """A depthwise conv with a channel multiplier (groups = C_in, two outputs per group:
    timm's FastViT, Keras' depth_multiplier): a grouped conv of one input per group."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 16), *cbr(16, 32, groups=16), *cbr(32, 16, 1))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.c(x), 1), 1))


class SelectiveKernel(nn.Module):
    """timm's SKNet: two paths stacked [N, 2, C, H, W], their sum squeezed to an attention
    [N, 2C, 1, 1] viewed [N, 2, C, 1, 1], softmax over the paths, weighted sum of the paths.
    The second unit multiplies the attention first (operands the other way round)."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 16))
        self.paths = nn.ModuleList(nn.ModuleList(nn.Sequential(*cbr(16, 16, k)) for k in (1, 3))
                                   for _ in range(2))
        self.fc = nn.ModuleList(nn.Sequential(nn.Conv2d(16, 8, 1), nn.ReLU(), nn.Conv2d(8, 32, 1))
                                for _ in range(2))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        y = self.c(x)
        for i in range(2):
            s = torch.stack([p(y) for p in self.paths[i]], dim=1)
            a = self.fc[i](s.sum(1).mean((2, 3), keepdim=True))
            a = torch.softmax(a.view(a.shape[0], 2, 16, 1, 1), dim=1)
            y = (s * a if i == 0 else a * s).sum(1)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class LinearAttention(nn.Module):
    """timm's EfficientViT (LiteMLA): a conv's features read as [N, heads, H*W, 3 * d] and
    cut into q, k and v inside each head (Slice or Split of a later channel axis: pinned,
    as is all the ReLU linear attention reads), projected back by a conv in a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 16))
        self.qkv, self.proj = nn.Conv2d(16, 48, 1), nn.Conv2d(16, 16, 1)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        y = self.c(x)
        b, _, h, w = y.shape
        qkv = self.qkv(y).reshape(b, -1, 3 * 8, h * w).transpose(-1, -2)
        q, k, v = qkv.chunk(3, dim=-1)
        q, k, v = F.relu(q), F.relu(k), F.pad(v, (0, 1), mode="constant", value=1.0)
        out = q @ (k.transpose(-1, -2) @ v)
        out = out[..., :-1] / (out[..., -1:] + 1e-5)
        y = y + self.proj(out.transpose(-1, -2).reshape(b, -1, h, w))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class LayerNorm2dHead(nn.Module):
    """torchvision's ConvNeXt head: pooled map, LayerNorm over its channels written
    channels-last between two permutes, flatten, dense."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 16), *cbr(16, 16))
        self.ln, self.head = nn.LayerNorm(16), nn.Linear(16, 5)

    def forward(self, x):
        y = F.adaptive_avg_pool2d(self.c(x), 1)
        y = self.ln(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(torch.flatten(y, 1))


class LayerNormHead(nn.Module):
    """LayerNorm over a dense layer's features: those are pinned, the layer before is not."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 16))
        self.fc, self.ln, self.head = nn.Linear(16, 32), nn.LayerNorm(32), nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.ln(F.relu(self.fc(self.c(x).mean((2, 3))))))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt: depthwise conv, channels-last LayerNorm, pointwise MatMuls on [N, H, W, C]
    (the hidden layer is what can go), layer scale, residual."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 4, 4)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.ln, self.up, self.down = nn.LayerNorm(16), nn.Linear(16, 32), nn.Linear(32, 16)
        self.scale = nn.Parameter(torch.full((16,), 0.5))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.down(F.gelu(self.up(self.ln(self.dw(x).permute(0, 2, 3, 1))))) * self.scale
        return self.head((x + y.permute(0, 3, 1, 2)).mean((2, 3)))


class Conv1dOverPositions(nn.Module):
    """Positions flattened behind the channels ([N, C, H, W] -> [N, C, H*W]), Conv1d, max."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(3, 16, 3, padding=1), nn.Conv1d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(F.relu(self.c2(F.relu(self.c1(x.flatten(2))))).amax(2))


class ChannelSlices(nn.Module):
    """Channels sliced into two branches (``y[:, :8]``, ``y[:, 8:]``) and concatenated;
    Inception-style branches of unequal widths with a pooling branch."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*cbr(3, 16))
        self.a, self.b = nn.Conv2d(8, 6, 1), nn.Conv2d(8, 10, 3, padding=1)
        self.c = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(16, 4, 1))
        self.head = nn.Linear(20, 5)

    def forward(self, x):
        y = self.stem(x)
        y = F.relu(torch.cat([self.a(y[:, :8]), self.b(y[:, 8:]), self.c(y)], 1))
        return self.head(y.mean((2, 3)))


class TransformerText(nn.Module):
    """A transformer encoder over token embeddings: attention is a region no channel rule
    follows (its inputs pinned), the feed-forward hidden layer can go."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.enc(self.emb(x)).mean(1))


class ViTTiny(nn.Module):
    """Patch embedding, a class token expanded to the batch and concatenated before the
    patches (along the token axis: the channels cannot follow a computed operand, so the
    model width is pinned), a pre-norm encoder layer, the class token's features to the
    head."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, 16))
        self.pos = nn.Parameter(torch.randn(1, 17, 16) * 0.1)
        self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True,
                                              norm_first=True)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        return self.head(self.norm(self.enc(t))[:, 0])


class SqueezeExciteExpand(nn.Module):
    """SENet's original code: the gate through dense layers, viewed [N, C, 1, 1] and
    ``expand_as`` the map (Expand to a shape computed from the map's)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(16, 4), nn.Linear(4, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.c1(x))
        b, c, _, _ = x.size()
        g = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3)).view(b, c)))))
        return self.head(F.relu(self.c2(x * g.view(b, c, 1, 1).expand_as(x))).mean((2, 3)))


class GlobalContextTiled(nn.Module):
    """A map's global mean tiled back over its positions (``repeat``: Expand and Tile), a
    clamp and hardtanh (dynamo: Greater/Where), and L2-normalised features into a cosine
    head (``F.normalize``: a norm over the channels, which pins them)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 24, 3, padding=1)
        self.c3 = nn.Conv2d(24, 24, 3, padding=1)
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        x = F.hardtanh(self.c1(x))
        g = x.mean((2, 3), keepdim=True).repeat(1, 1, x.shape[2], x.shape[3])
        y = torch.clamp(self.c2(x + g), min=0.0)
        return self.head(4 * F.normalize(F.relu(self.c3(y)).mean((2, 3)), dim=1))


class EinsumDense(nn.Module):
    """Dense layers written as ``torch.einsum`` (as Keras' EinsumDense exports), the second
    with its weight stored output-first."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 2, padding=1)
        self.w1 = nn.Parameter(torch.randn(8 * 8 * 8, 32) * 0.05)
        self.w2 = nn.Parameter(torch.randn(24, 32) * 0.2)
        self.b2 = nn.Parameter(torch.zeros(24))
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        f = F.relu(self.c1(x)).flatten(1)
        h = F.relu(torch.einsum("nk,ko->no", f, self.w1))
        return self.head(F.relu(torch.einsum("nk,ok->no", h, self.w2) + self.b2))


class EinsumAttention(nn.Module):
    """Attention written with ``torch.einsum`` ("bhid,bhjd->bhij", then "bhij,bhjd->bhid")
    over patch tokens: MatMuls once rewritten, so its 4 heads are units."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 32, 4, 4)
        self.qkv, self.out = nn.Linear(32, 96), nn.Linear(32, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        n, length, _ = t.shape
        q, k, v = self.qkv(t).reshape(n, length, 3, 4, 8).permute(2, 0, 3, 1, 4)
        a = torch.einsum("bhid,bhjd->bhij", q, k).mul(8 ** -0.5).softmax(-1)
        c = torch.einsum("bhij,bhjd->bhid", a, v).transpose(1, 2).reshape(n, length, 32)
        return self.head((t + self.out(c)).mean(1))


class GroupedBlock(nn.Module):
    """A ResNeXt block: a grouped 3x3 conv (4 groups) inside a residual add, a pointwise
    conv after it."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.pw = nn.Conv2d(16, 32, 1)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = x + F.relu(self.grouped(x))
        return self.head(F.relu(self.pw(x)).mean((2, 3)))


class AlexNetTowers(nn.Module):
    """AlexNet's shape: PyTorch's LocalResponseNorm (TorchScript writes a pad of the
    channels, an average pool across them and an If on the rank; the pad pins its input),
    two-group convs (the two towers), max pooling, a flattened dense head."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.lrn = nn.LocalResponseNorm(3)
        self.c2 = nn.Conv2d(16, 32, 3, padding=1, groups=2)
        self.c3 = nn.Conv2d(32, 32, 3, padding=1, groups=2)
        self.head = nn.Linear(32 * 4 * 4, 5)

    def forward(self, x):
        x = self.lrn(F.relu(self.c1(x)))
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.head(F.max_pool2d(F.relu(self.c3(x)), 2).flatten(1))


class CRNN(nn.Module):
    """A CRNN's classifier: a conv stack read as a sequence of columns ([N, C, H, W] ->
    [N, C * H, W]: each channel unfolds into its H rows, one unit), an LSTM over the
    columns, its last step into the head."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(*cbr(3, 8), nn.MaxPool2d(2), *cbr(8, 16),
                                   nn.MaxPool2d((2, 1)))
        self.rnn = nn.LSTM(16 * HW // 4, 24, batch_first=True)
        self.head = nn.Linear(24, 10)

    def forward(self, x):
        y = self.convs(x)
        n, c, h, w = y.shape
        out, _ = self.rnn(y.reshape(n, c * h, w).permute(0, 2, 1))
        return self.head(out[:, -1])


NETS = {"mobilenetv2": MobileNetV2ish, "squeeze_excite": SqueezeExcite,
        "shuffle": ShuffleUnit, "shuffle_chain": ShuffleChain, "dense": DenseBlock,
        "channels_last": ChannelsLast,
        "view_flatten": ViewFlatten, "flatten_affine": FlattenAffine,
        "layernorm": LayerNormHead,
        "layernorm2d_head": LayerNorm2dHead, "window_pad": WindowPad,
        "patch_unfold": PatchUnfold, "depth_multiplier": DepthMultiplier,
        "selective_kernel": SelectiveKernel, "linear_attention": LinearAttention,
        "conv1d": Conv1dOverPositions, "convnext": ConvNeXtBlock, "slices": ChannelSlices,
        "transformer": TransformerText, "vit": ViTTiny, "se_expand": SqueezeExciteExpand,
        "global_context": GlobalContextTiled, "einsum": EinsumDense, "grouped": GroupedBlock,
        "alexnet_towers": AlexNetTowers, "crnn": CRNN, "einsum_attention": EinsumAttention}


def _net(name: str):
    torch.manual_seed(0)
    net = NETS[name]()
    random_batchnorm(net)
    with torch.no_grad():
        net.eval()
        z = net(_x(name, 300, seed=9)).double()  # a balanced head: every class predicted
        mean, std = z.mean(0), z.std(0) + 1e-6
        net.head.weight.copy_(net.head.weight / std[:, None].float())
        net.head.bias.copy_(((net.head.bias - mean) / std).float())
    return net


def _x(name: str, n: int, seed: int):
    if name == "transformer":
        return torch.from_numpy(np.random.default_rng(seed).integers(0, 50, (n, 7)))
    shape = (n, HW, HW, 3) if name == "channels_last" else (n, 3, HW, HW)
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("architectures")


@pytest.mark.parametrize("exporter", ["torchscript", "torchscript-11", "dynamo"])
@pytest.mark.parametrize("name", sorted(NETS))
def test_architecture_decomposes(exported: Path, name: str, exporter: str) -> None:
    """(TorchScript at opset 11 writes shape computations that onnx's data propagation does
    not follow, and LayerNorm as ReduceMean, Sub, Pow, ...)"""
    _decomposes(exported, name, exporter)


@pytest.mark.parametrize("name", ["slices", "mobilenetv2", "view_flatten"])
def test_opset9_exports_decompose(exported: Path, name: str) -> None:
    """Opset 9 (older exporters): Slice takes its bounds as attributes, not inputs."""
    _decomposes(exported, name, "torchscript-9")


@pytest.mark.parametrize("name", ["mobilenetv2", "alexnet_towers", "squeeze_excite",
                                  "shuffle"])
def test_opset7_exports_decompose(exported: Path, name: str) -> None:
    """Opset 7 (the ONNX model zoo's oldest models): TorchScript leaves every
    BatchNormalization to ONNX Runtime's own fusion, writes shape indices as doubles cast
    to int64, and Unsqueeze's axes as an attribute."""
    _decomposes(exported, name, "torchscript-7")


def _decomposes(exported: Path, name: str, exporter: str) -> None:
    kind, _, opset = exporter.partition("-")
    if name in ("transformer", "vit") and opset:
        pytest.skip("torch exports its attention (aten::unflatten) from opset 13 only")
    if name in ("einsum", "einsum_attention") and opset:
        pytest.skip("torch exports einsum from opset 12 only")
    path = torch_export(_net(name), _x(name, 2, seed=1), kind,
                        exported / f"{name}-{exporter}.onnx", opset=int(opset or 17))
    x = _x(name, 240, seed=0).numpy()
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    # rtol: two ORT graphs of one random net differ by ~1e-5 on log-odds of a few units
    assert_full_module_exact(dec, path, x)
    half = dec.build(0, 0.5, check=True)
    assert half.removed
    assert model_stats(half.proto).macs < model_stats(path).macs
    assert ort_run(half.proto, x[:7]).shape == (7, 1)


@pytest.mark.parametrize("name", ["view_flatten", "shuffle", "global_context"])
def test_unoptimised_dynamo_export_decomposes(exported: Path, name: str) -> None:
    """dynamo with ``optimize=False`` leaves CastLike, SplitToSequence and shape arithmetic
    in the graph: the parent is run through onnxscript's optimiser first
    (``parent.optimised_export``); exact with nothing pruned against the file as given."""
    path = exported / f"{name}-unoptimised.onnx"
    with quiet():
        torch.onnx.export(_net(name), (_x(name, 2, seed=1),), str(path), dynamo=True,
                          optimize=False, external_data=False, input_names=["input"],
                          output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("N", min=1)},))
    assert "CastLike" in {n.op_type for n in onnx.load(path).graph.node}
    x = _x(name, 240, seed=0).numpy()
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    assert_full_module_exact(dec, path, x)
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < dec.parent.macs


def test_unoptimised_dynamo_export_without_onnxscript_says_what_to_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from onnxdecomp.decompose.parent import optimised_export
    from onnxdecomp.errors import UnsupportedModelError

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2])
    like = onnx.numpy_helper.from_array(np.zeros((), np.float32), "like")
    graph = helper.make_graph([helper.make_node("CastLike", ["x", "like"], ["y"])], "g",
                              [x], [helper.make_tensor_value_info("y", 1, ["N", 2])], [like])
    model = helper.make_model(graph, producer_name="pytorch")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails
    with pytest.raises(UnsupportedModelError, match="run onnxscript.optimizer.optimize"):
        optimised_export(model)
    model.producer_name = "tf2onnx"
    assert optimised_export(model) is model  # another exporter's CastLike: as it is


@pytest.mark.parametrize("name", ["mobilenetv2", "squeeze_excite", "dense"])
def test_float16_models_decompose(exported: Path, name: str) -> None:
    """Float16 weights and activations behind float32 input and output casts (what
    onnxconverter-common writes): exact with nothing pruned (both compute in float16),
    smaller at keep 0.5. (ONNX Runtime 1.32's CPU provider crashes loading a float16
    ViT's or recurrent layer's graph: none here.)"""
    path = torch_export(_net(name), _x(name, 2, seed=1), "torchscript",
                        exported / f"{name}-fp32.onnx")
    half = exported / f"{name}-fp16.onnx"
    onnx.save(float16_model(onnx.load(path)), half)
    assert_export_decomposes(half)


@pytest.mark.parametrize("zipmap", [True, False])
def test_sklearn_classifier_decomposes(zipmap: bool) -> None:
    """A scikit-learn export (label and probabilities, ZipMap by default): the modules are
    cut from the probabilities' logits."""
    model = build_sklearn_like(zipmap)
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    dec = Decomposer(model, x, None, Settings(device="cpu", seed=0, align=1))
    assert dec.parent.num_classes == 3
    probs = ort_run(select_scores_output(model), x[:40])  # its first output is the label
    full = dec.build(1, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x[:40])[:, 0],
                               logodds_from_logits(np.log(probs))[:, 1], atol=1e-4)
    assert dec.build(1, 0.5, check=True).removed


@pytest.mark.parametrize("op,attrs", [
    ("Scaler", {"offset": [0.5, -1, 0, 2, 0.1, 0], "scale": [2.0, 0.5, 1, 1, 3, 0.25]}),
    ("Scaler", {"offset": [0.3], "scale": [1.5]}),
    ("Normalizer", {"norm": "L2"}), ("Normalizer", {"norm": "L1"}),
    ("Normalizer", {"norm": "MAX"}),
    ("Imputer", {"imputed_value_floats": [9.0], "replaced_value_float": 0.0}),
])
def test_sklearn_preprocessing_in_front(op: str, attrs: dict) -> None:
    """skl2onnx writes a pipeline's StandardScaler, Normalizer and SimpleImputer as ai.onnx.ml
    ops in front of the network: the modules hold standard ops that compute what ONNX
    Runtime computes for them (zero rows and imputed values included)."""
    model = build_sklearn_like(False)
    model.graph.node.insert(0, helper.make_node(op, ["x"], ["xp"], name="pre",
                                                domain="ai.onnx.ml", **attrs))
    model.graph.node[1].input[0] = "xp"
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    x[:5] = 0.0  # zero rows: a norm of 0, the imputer's replaced value
    x[5:8, :3] = 0.0
    x[8] = [-1, -2, 0, -3, -0.5, -1]  # a row whose max is 0
    dec = Decomposer(model, x, None, Settings(device="cpu", seed=0, align=1))
    probs = ort_run(select_scores_output(model), x[:40])
    full = dec.build(1, 1.0, check=True).proto
    assert all(n.domain in ("", "ai.onnx") for n in full.graph.node)
    np.testing.assert_allclose(ort_run(full, x[:40])[:, 0],
                               logodds_from_logits(np.log(probs))[:, 1], atol=1e-4)
    assert dec.build(1, 0.5, check=True).removed


def test_zoo_mobilenet_on_real_data() -> None:
    """The zoo's MobileNetV2-mini (TorchScript opset 11: its flatten is a Reshape to a
    computed shape, which the last landing refused) on Fashion-MNIST: exact with nothing
    pruned, and a module at keep 0.7 keeps its class's decisions."""
    root = Path(__file__).resolve().parents[1]
    data = root.parent / "shared" / "data" / "fashion-mnist"
    if not data.is_dir():
        pytest.skip("../shared/data/fashion-mnist absent")
    from onnxdecomp.data import fit_to_input, load_data
    from onnxdecomp.decompose.fidelity import jaccard_fidelity

    model = str(root / "models" / "mobilenetv2_fmnist.onnx")
    train = fit_to_input(load_data(str(data), "train", limit=400), (None, 1, 28, 28),
                         np.float32)
    dec = Decomposer(model, train.x, train.y, Settings(device="cpu", seed=0, align=1))
    test = fit_to_input(load_data(str(data), "test", limit=500), (None, 1, 28, 28),
                        np.float32)
    logodds = logodds_from_logits(ort_run(model, test.x))
    full = dec.build(6, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, test.x)[:, 0], logodds[:, 6], atol=1e-5)
    half = dec.build(6, 0.7, check=True)
    assert model_stats(half.proto).macs < 0.9 * model_stats(model).macs
    assert jaccard_fidelity(ort_run(half.proto, test.x), logodds, 6) > 0.8


def _keras_like() -> onnx.ModelProto:
    """What tf2onnx writes for a small Keras CNN: NHWC input, Transpose in, Conv + Relu +
    MaxPool in NCHW, Transpose out, a constant flattening Reshape, MatMul + Add dense
    layers, Softmax over the last axis."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)

    def w(name: str, *shape: int, scale: float = 0.3) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Transpose", ["input_1"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "k1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "k2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Transpose", ["r2"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "flat"], ["f"]),
        helper.make_node("MatMul", ["f", "w3"], ["m3"]),
        helper.make_node("Add", ["m3", "b3"], ["a3"]),
        helper.make_node("Relu", ["a3"], ["r3"]),
        helper.make_node("MatMul", ["r3", "w4"], ["m4"]),
        helper.make_node("Add", ["m4", "b4"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["dense_1"], axis=-1),
    ]
    inits = [w("k1", 8, 3, 3, 3), w("b1", 8, scale=0.1), w("k2", 12, 8, 3, 3),
             w("b2", 12, scale=0.1), numpy_helper.from_array(np.array([-1, 192], np.int64),
                                                              "flat"),
             w("w3", 192, 16, scale=0.1), w("b3", 16, scale=0.1), w("w4", 16, 5),
             w("b4", 5, scale=0.1)]
    graph = helper.make_graph(
        nodes, "keras", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT,
                                                       ["unk__1", 8, 8, 3])],
        [helper.make_tensor_value_info("dense_1", TensorProto.FLOAT, ["unk__2", 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_tf2onnx_shaped_keras_cnn_decomposes() -> None:
    model = _keras_like()
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(0).normal(size=(300, 8, 8, 3)).astype(np.float32)
    dec = Decomposer(model, x, None, Settings(device="cpu", seed=0, align=1))
    ops = [n.op_type for n in dec.parent.proto.graph.node]
    assert "Flatten" in ops and ops.count("Transpose") == 1  # the flatten's folded away
    logodds = logodds_from_logits(np.log(ort_run(model, x[:50])))
    for k in range(dec.parent.num_classes):
        full = dec.build(k, 1.0, check=True).proto
        np.testing.assert_allclose(ort_run(full, x[:50])[:, 0], logodds[:, k], atol=1e-4)
    half = dec.build(0, 0.5, check=True)
    assert half.removed and ort_run(half.proto, x[:5]).shape == (5, 1)


def test_qdq_quantised_model_decomposes(tmp_path: Path) -> None:
    """ONNX Runtime's static quantisation in QDQ form: activations through QuantizeLinear /
    DequantizeLinear (a rule: per tensor, or per channel and sliced), weights dequantised from
    int8 constants (folded for the refit, quantised again in the module). The module with
    nothing pruned is its parent's log-odds up to the int8 kernels' rounding; a pruned one is
    smaller, its weights int8."""
    from onnxdecomp.decompose.fidelity import logodds_fidelity

    x = _x("view_flatten", 240, seed=0).numpy()
    qdq = _quantized(tmp_path, x, "QDQ", per_channel=True)
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(qdq)).graph.node}
    dec = Decomposer(qdq, x, None, Settings(device="cpu", seed=0, align=1))
    # fidelity is measured against the parent as it computes, int8 kernels and all, not
    # against its float twin (whose logits differ by a few quantisation steps)
    np.testing.assert_allclose(dec.hold_logits, ort_run(str(qdq), dec.x_hold), atol=1e-5)
    logodds = logodds_from_logits(ort_run(str(qdq), x))
    unfused = logodds_from_logits(_unoptimised_run(qdq, x))  # no int8 kernels: exact math
    for k in range(dec.parent.num_classes):
        full = dec.build(k, 1.0, check=True).proto
        np.testing.assert_allclose(_unoptimised_run(full, x)[:, 0], unfused[:, k], atol=1e-4)
        assert logodds_fidelity(ort_run(full, x), logodds, k) > 0.9
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < model_stats(qdq).macs
    # Its weights are int8 again, read through DequantizeLinear as the parent read them.
    inits = {t.name: t.data_type for t in half.proto.graph.initializer}
    made = {o: n for n in half.proto.graph.node for o in n.output}
    for conv in (n for n in half.proto.graph.node if n.op_type == "Conv"):
        dq = made[conv.input[1]]
        assert dq.op_type == "DequantizeLinear" and inits[dq.input[0]] == onnx.TensorProto.INT8
    def weight_bytes(proto: onnx.ModelProto) -> int:
        return sum(t.ByteSize() for t in proto.graph.initializer)

    assert weight_bytes(half.proto) < weight_bytes(onnx.load(str(qdq)))


def _quantized(tmp_path: Path, x: np.ndarray, fmt: str, per_channel: bool) -> Path:
    """The view-flatten net quantised by ONNX Runtime's ``quantize_static`` in ``fmt``
    (QDQ or QOperator), calibrated on ``x``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    path = torch_export(_net("view_flatten"), _x("view_flatten", 2, seed=1), "torchscript",
                        tmp_path / "float.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": x[i:i + 40]} for i in range(0, len(x), 40)])

        def get_next(self):
            return next(self.batches, None)

    out = tmp_path / f"{fmt}{int(per_channel)}.onnx"
    quantize_static(str(path), str(out), Reader(), quant_format=getattr(QuantFormat, fmt),
                    per_channel=per_channel)
    return out


@pytest.mark.parametrize("per_channel", [False, True])
def test_qoperator_quantised_model_decomposes(tmp_path: Path, per_channel: bool) -> None:
    """The QOperator form (QLinearConv, ONNX Runtime's QGemm): rewritten as QDQ around
    float ops, then as the QDQ form: with nothing pruned, the parent's log-odds up to where
    its integer requantisation and the float emulation round one activation to different
    steps (1 sample of 240 with per-channel weights); pruned, int8 weights."""
    x = _x("view_flatten", 240, seed=0).numpy()
    qop = _quantized(tmp_path, x, "QOperator", per_channel)
    ops = {n.op_type for n in onnx.load(str(qop)).graph.node}
    assert {"QLinearConv", "QGemm"} <= ops
    # counted as the float ops they compute (QGemm is no op onnx's shape inference knows)
    stats, floats = model_stats(qop), model_stats(tmp_path / "float.onnx")
    assert stats.macs == floats.macs and stats.op_counts["com.microsoft.QGemm"] == 3
    assert stats.params >= floats.params  # int8 weights, int32 biases, and their scales
    dec = Decomposer(qop, x, None, Settings(device="cpu", seed=0, align=1))
    assert not {"QLinearConv", "QGemm"} & {n.op_type for n in dec.parent.proto.graph.node}
    want = logodds_from_logits(_unoptimised_run(qop, x))
    for k in (0, 2):
        full = dec.build(k, 1.0, check=True).proto
        gap = np.abs(_unoptimised_run(full, x)[:, 0] - want[:, k])
        assert np.mean(gap < 1e-4) > 0.98 and gap.max() < 0.3
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < model_stats(dec.parent.proto).macs
    made = {o: n for n in half.proto.graph.node for o in n.output}
    int8 = {t.name for t in half.proto.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    for conv in (n for n in half.proto.graph.node if n.op_type == "Conv"):
        assert made[conv.input[1]].op_type == "DequantizeLinear"
        assert made[conv.input[1]].input[0] in int8


@pytest.mark.parametrize("name", ["mobilenetv2", "view_flatten", "squeeze_excite"])
def test_runtime_optimised_model_decomposes(tmp_path: Path, name: str) -> None:
    """A model saved by ONNX Runtime at its extended level holds com.microsoft FusedConv
    (Conv + Relu/Clip/...), FusedGemm, Gelu and QuickGelu (SiLU): unfused, it decomposes
    exactly, counts the MACs of the model it came from, and its modules are standard ONNX."""
    import onnxruntime as ort

    path = torch_export(_net(name), _x(name, 2, seed=1), "torchscript", tmp_path / "m.onnx")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    optimised = tmp_path / "optimised.onnx"
    fused = [n.op_type for n in onnx.load(str(optimised)).graph.node if n.domain]
    assert fused and set(fused) <= set(FUSED)
    assert model_stats(optimised).macs == model_stats(path).macs
    x = _x(name, 240, seed=0).numpy()
    dec = Decomposer(optimised, x, None, Settings(device="cpu", seed=0, align=1))
    logodds = logodds_from_logits(ort_run(str(optimised), x[:50]))
    full = dec.build(0, 1.0, check=True).proto
    assert not any(n.domain for n in full.graph.node)
    np.testing.assert_allclose(ort_run(full, x[:50])[:, 0], logodds[:, 0], atol=1e-5, rtol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < model_stats(path).macs


def test_runtime_all_level_model_is_refused_naming_its_layout(tmp_path: Path) -> None:
    """Saved at ONNX Runtime's ALL level, a CNN runs in its blocked layout
    (com.microsoft.nchwc Conv, ReorderOutput), which is this machine's: refused in one line
    that says which file to give instead."""
    import onnxruntime as ort

    path = torch_export(_net("mobilenetv2"), _x("mobilenetv2", 2, seed=1), "torchscript",
                        tmp_path / "m.onnx")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(tmp_path / "all.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    if not any(n.domain == "com.microsoft.nchwc" for n in onnx.load(str(tmp_path / "all.onnx"))
               .graph.node):
        pytest.skip("ONNX Runtime wrote no NCHWc op on this CPU")
    x = _x("mobilenetv2", 40, seed=0).numpy()
    with pytest.raises(UnsupportedOpError, match="blocked .NCHWc. layout op.*EXTENDED level"):
        Decomposer(tmp_path / "all.onnx", x, None, Settings(device="cpu"))


def _unoptimised_run(model, x: np.ndarray) -> np.ndarray:
    """First output with ONNX Runtime's graph optimisations off: a QDQ graph then runs as
    written (dequantise, float op, quantise) instead of through fused int8 kernels."""
    import onnxruntime as ort

    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


class AdaptiveUpsample(nn.Module):
    """torchvision's AlexNet on small images: its 6x6 adaptive average pool of a smaller map
    (here 4x4, not a factor of 6), which the dynamo exporter writes as a GatherND of
    positions on the spatial axes moved first, then a mean."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 16), nn.MaxPool2d(4), *cbr(16, 16))
        self.head = nn.Linear(16 * 36, 5)

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.c(x), 6), 1))


def test_adaptive_pool_to_a_larger_map_decomposes(tmp_path: Path) -> None:
    """(TorchScript refuses to export an output size that is not a factor of the input's.)"""
    torch.manual_seed(0)
    net = AdaptiveUpsample().eval()
    x = np.random.default_rng(0).normal(size=(240, 3, HW, HW)).astype(np.float32)
    path = torch_export(net, torch.from_numpy(x[:2]), "dynamo", tmp_path / "m.onnx")
    assert "GatherND" in {n.op_type for n in onnx.load(str(path)).graph.node}
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    assert_full_module_exact(dec, path, x)
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < model_stats(path).macs
    assert ort_run(half.proto, x[:7]).shape == (7, 1)


class PooledConvHead(nn.Module):
    """SqueezeNet's head: a 1x1 conv to the classes, pooled, not flattened: [N, K, 1, 1]
    (with ``softmax``: over axis 1 of the map, as SqueezeNet 1.1 in the ONNX model zoo)."""

    def __init__(self, softmax: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(*cbr(3, 16), nn.MaxPool2d(2), *cbr(16, 24))
        self.head, self.softmax = nn.Conv2d(24, 5, 1), softmax

    def forward(self, x):
        z = F.adaptive_avg_pool2d(F.relu(self.head(self.body(x))), 1)
        return torch.softmax(z, 1) if self.softmax else z


@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize("exporter", ["torchscript", "torchscript-11", "dynamo"])
def test_pooled_conv_head_scores(tmp_path: Path, exporter: str, softmax: bool) -> None:
    """Scores [N, K, 1, 1] are read as [N, K] (``select_scores_output``), a Softmax over the
    map's axis 1 stripped like any output softmax; eval reads them too."""
    torch.manual_seed(0)
    kind, _, opset = exporter.partition("-")
    path = torch_export(PooledConvHead(softmax).eval(), _x("plain", 2, seed=1), kind,
                        tmp_path / "head.onnx", opset=int(opset or 17))
    x = _x("plain", 240, seed=0).numpy()
    flat = select_scores_output(onnx.load(str(path)))
    assert [d.dim_value for d in flat.graph.output[0].type.tensor_type.shape.dim][1:] == [5]
    raw = ort_run(str(path), x[:50]).reshape(50, 5)
    np.testing.assert_allclose(ort_run(flat, x[:50]), raw, atol=1e-6)
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    assert [n.op_type for n in dec.parent.proto.graph.node].count("Softmax") == 0
    logodds = logodds_from_logits(np.log(raw) if softmax else raw)
    for k in (0, 3):
        full = dec.build(k, 1.0, check=True).proto
        np.testing.assert_allclose(ort_run(full, x[:50])[:, 0], logodds[:, k], atol=1e-4)
    assert dec.build(0, 0.5, check=True).removed


def test_input_of_any_size(tmp_path: Path) -> None:
    """An image classifier exported for any input size ([N, 3, H, W]): its MACs are counted
    at the calibration samples' size, which its modules record (they keep the dynamic
    input and run at other sizes), and linking them counts at it too."""
    from onnxdecomp import link, provenance

    net = _net("mobilenetv2")
    path = tmp_path / "any_size.onnx"
    torch.onnx.export(net, (_x("mobilenetv2", 2, seed=1),), str(path), dynamo=False,
                      opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}})
    x = _x("mobilenetv2", 300, seed=0).numpy()
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    assert dec.parent.macs > 0
    module = dec.build(0, 0.5, check=True).proto
    assert provenance.macs_at(module) == (3, HW, HW)
    assert [d.dim_param or d.dim_value for d in module.graph.input[0].type.tensor_type.shape.dim
            ] == ["N", 3, "H", "W"]
    assert 0 < model_stats(module).macs < dec.parent.macs
    assert ort_run(module, _x("mobilenetv2", 4, seed=2).numpy()[:, :, :12, :12]).shape == (4, 1)
    other = dec.build(1, 0.5, check=True).proto
    linked = link([module, other], mode="parallel", device="cpu").proto
    assert provenance.macs_at(linked) == (3, HW, HW) and model_stats(linked).macs > 0


class BinaryHead(nn.Module):
    """A binary classifier with one sigmoid output (Keras' Dense(1, "sigmoid"))."""

    def __init__(self, flat: bool = False) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 8, stride=2), *cbr(8, 16, stride=2))
        self.head = nn.Linear(16, 1)
        self.flat = flat  # p [N] rather than [N, 1]

    def forward(self, x):
        p = torch.sigmoid(self.head(self.c(x).mean((2, 3))))
        return p.squeeze(1) if self.flat else p


@pytest.mark.parametrize("exporter,flat", [("torchscript", False), ("dynamo", False),
                                           ("torchscript", True), ("dynamo", True)])
def test_binary_sigmoid_classifier(tmp_path: Path, exporter: str, flat: bool) -> None:
    """One sigmoid output p ([N, 1] or [N]) is two classes: class 1's log-odds is logit(p),
    class 0's its negative, every module exact with nothing pruned and no bigger than the
    parent (its head one row, as the parent's), smaller at keep 0.5."""
    torch.manual_seed(0)
    net = BinaryHead(flat).eval()
    with torch.no_grad():  # centre the logit so that both classes occur
        z = net.head(net.c(_x("binary", 200, seed=9)).mean((2, 3)))
        net.head.bias -= z.mean()
    path = torch_export(net, _x("binary", 2, seed=1), exporter, tmp_path / "binary.onnx")
    x = _x("binary", 240, seed=0).numpy()
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    assert dec.parent.num_classes == 2
    p = ort_run(str(path), x[:50]).reshape(50).astype(np.float64)
    logit = np.log(p) - np.log1p(-p)
    for k, sign in ((0, -1.0), (1, 1.0)):
        full = dec.build(k, 1.0, check=True).proto
        np.testing.assert_allclose(ort_run(full, x[:50])[:, 0], sign * logit, atol=1e-4)
        assert model_stats(full).macs == model_stats(path).macs
    assert dec.build(1, 0.5, check=True).removed
    if exporter == "torchscript":  # eval and a pair's union through the command line
        from click.testing import CliRunner

        from onnxdecomp.cli import main

        data = tmp_path / "d.npz"
        np.savez(data, x=x, y=(logit_all := ort_run(str(path), x).reshape(-1)) > 0.5)
        assert {0, 1} == set(np.unique(logit_all > 0.5).tolist())

        def run(*args) -> dict:
            res = CliRunner().invoke(main, [str(a) for a in args])
            assert res.exit_code == 0, res.output
            return json.loads(res.stdout)

        assert run("eval", path, "--data", data, "--json")["top1"] == 1.0
        run("decompose", path, "--data", data, "-o", tmp_path / "m", "--keep", "1.0",
            "--json")
        run("link", tmp_path / "m", "-o", tmp_path / "u.onnx", "--json")
        res = run("eval", tmp_path / "u.onnx", "--data", data, "--json")
        assert res["top1"] == res["parent_restricted_top1"] == 1.0


class ProbabilityHead(nn.Module):
    """Probabilities made otherwise than by one softmax: skl2onnx's binary [1 - p, p] (or
    [p, 1 - p]) with p = sigmoid(z), or a soft vote 0.3 softmax(a) + 0.7 softmax(b)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 8, stride=2), *cbr(8, 16, stride=2))
        self.kind = kind
        self.a, self.b = nn.Linear(16, 1 if kind != "vote" else 4), nn.Linear(16, 4)

    def forward(self, x):
        f = self.c(x).mean((2, 3))
        if self.kind == "vote":
            return 0.3 * torch.softmax(self.a(f), 1) + 0.7 * torch.softmax(self.b(f), 1)
        p = torch.sigmoid(self.a(f))
        return torch.cat([1 - p, p] if self.kind == "binary" else [p, 1 - p], 1)


@pytest.mark.parametrize("kind", ["binary", "binary_swapped", "vote"])
def test_probabilities_without_a_trailing_softmax(tmp_path: Path, kind: str) -> None:
    """Such probabilities are read as log p, not as logits: every module at keep 1.0 gives
    the class's log-odds log(p_k / (1 - p_k)) (a binary one's was 2p - 1, a vote's every
    score below 0), and is smaller at keep 0.5."""
    torch.manual_seed(0)
    net = ProbabilityHead(kind).eval()
    path = torch_export(net, _x("probs", 2, seed=1), "torchscript", tmp_path / "p.onnx")
    x = _x("probs", 240, seed=0).numpy()
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    p = ort_run(str(path), x[:50]).astype(np.float64)
    k_count = p.shape[1]
    assert dec.parent.num_classes == k_count
    for k in range(k_count):
        full = dec.build(k, 1.0, check=True).proto
        logodds = np.log(p[:, k]) - np.log(p.sum(1) - p[:, k])
        np.testing.assert_allclose(ort_run(full, x[:50])[:, 0], logodds, atol=2e-3)
    assert dec.build(0, 0.5, check=True).removed


class SequenceDense(nn.Module):
    """A dense layer over every step of a float sequence input [N, T, F], then a mean over
    the steps: the input's channels are its features F, the axis the MatMul reads."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(torch.relu(self.a(x)).mean(1))


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_dense_layer_over_a_sequence_input(tmp_path: Path, exporter: str) -> None:
    torch.manual_seed(0)
    path = torch_export(SequenceDense().eval(), torch.randn(2, 5, 6), exporter,
                        tmp_path / "seq.onnx")
    assert_export_decomposes(path)


class UnitStepHead(nn.Module):
    """Scores [N, 1, K]: Keras' ``Reshape((1, K))`` before the softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Sequential(*cbr(3, 8, stride=2), *cbr(8, 16, stride=2))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        z = self.head(self.c(x).mean((2, 3)))
        return torch.softmax(z.reshape(z.shape[0], 1, 4), dim=-1)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_scores_with_a_unit_axis_before_the_classes(tmp_path: Path, exporter: str) -> None:
    """[N, 1, K] is read as [N, K] (a tagger's steps are never a fixed 1): modules exact
    with nothing pruned, smaller at keep 0.5, and eval takes (N,) labels."""
    torch.manual_seed(0)
    path = torch_export(UnitStepHead().eval(), _x("unit", 2, seed=1), exporter,
                        tmp_path / "unit.onnx")
    assert_export_decomposes(path)
    from click.testing import CliRunner

    from onnxdecomp.cli import main

    x = _x("unit", 60, seed=3).numpy()
    np.savez(tmp_path / "d.npz", x=x, y=ort_run(str(path), x).reshape(60, 4).argmax(1))
    res = CliRunner().invoke(main, ["eval", str(path), "--data", str(tmp_path / "d.npz"),
                                    "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["top1"] == 1.0, res.output


def test_constant_concatenated_beside_the_channels() -> None:
    """A constant concatenated along a spatial axis (a learned border, batch fixed at 1)
    holds every channel of the map: it is sliced with them."""
    from conftest import _init, make_model
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def normal(scale: float, *shape: int) -> np.ndarray:
        return rng.normal(0, scale, shape).astype(np.float32)

    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["c1", "border"], ["cat"], axis=3),
             helper.make_node("Relu", ["cat"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["c2"]),
             helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wh", "bh"], ["logits"], transB=1)]
    inits = [_init("w1", normal(0.4, 8, 3, 3, 3)), _init("b1", normal(0.1, 8)),
             _init("border", normal(1.0, 1, 8, 6, 2)),
             _init("w2", normal(0.4, 6, 8, 1, 1)), _init("b2", normal(0.1, 6)),
             _init("wh", normal(0.5, 4, 6)), _init("bh", normal(0.1, 4))]
    model = make_model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                             [1, 3, 6, 6])],
                       [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
                       inits)
    x = rng.normal(size=(120, 3, 6, 6)).astype(np.float32)
    dec = Decomposer(model, x, None, Settings(device="cpu", seed=0, align=1))
    full = dec.build(0, 1.0, check=True).proto
    parent = logodds_from_logits(np.concatenate([ort_run(model, x[i:i + 1]) for i in range(20)]))
    got = np.concatenate([ort_run(full, x[i:i + 1]) for i in range(20)])[:, 0]
    np.testing.assert_allclose(got, parent[:, 0], atol=1e-5)
    half = dec.build(0, 0.5, check=True)
    border = next(t for t in half.proto.graph.initializer if t.name.startswith("border"))
    assert half.removed and border.dims[1] < 8
    assert ort_run(half.proto, x[:1]).shape == (1, 1)


def test_grouped_conv_keeps_its_groups_and_refits_each(exported: Path) -> None:
    """The i-th channel of every group is one unit: a module keeps the same count in each
    group, so the conv stays grouped; each group's rows are re-solved on its kept inputs,
    which reproduces the parent's grouped conv better than slicing."""
    from onnxdecomp.channels import plain_slice
    from onnxdecomp.decompose.compensate import make_refit
    from onnxdecomp.decompose.criteria import class_concern
    from onnxdecomp.decompose.decomposer import build_module
    from onnxdecomp.irutil import with_outputs
    from onnxdecomp.runtime import Runner

    path = torch_export(_net("grouped"), _x("grouped", 2, seed=1), "torchscript",
                        exported / "grouped-groups.onnx")
    x = _x("grouped", 300, seed=0).numpy()
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    module = dec.build(0, 0.75, check=True)
    conv = next(n for n in module.proto.graph.node if n.op_type == "Conv"
                and any(a.name == "group" and a.i == 4 for a in n.attribute))
    w = next(t for t in module.proto.graph.initializer if t.name == conv.input[1])
    assert w.dims[0] % 4 == 0 and w.dims[0] * w.dims[1] < 16 * 4  # smaller, still 4 groups
    out = conv.output[0]
    node = next(n for n in dec.parent.model.graph if n.name == conv.name)
    kept = dec.parent.cg.kept_channels(node.outputs[0], module.removed)
    parent = Runner(with_outputs(dec.parent.proto, [out]), device="cpu").run(x)[1][:, kept]
    refit = make_refit(dec.profile, class_concern(dec.profile, 0).weights, "lstsq", 1e-3)
    errors = []
    for rf in (refit, plain_slice):
        proto = build_module(dec.parent, module.removed, rf, lambda m: None, check=True)
        got = Runner(with_outputs(proto, [out]), device="cpu").run(x)[1]
        errors.append(float(np.mean((got - parent) ** 2) / np.mean(parent ** 2)))
    assert errors[0] < 0.8 * errors[1]


@pytest.mark.parametrize("op,mode", [("DepthToSpace", "DCR"), ("DepthToSpace", "CRD"),
                                     ("SpaceToDepth", None)])
def test_depth_and_space_moves(op: str, mode: str | None) -> None:
    """DepthToSpace (``nn.PixelShuffle`` is CRD, the default DCR) and SpaceToDepth: the
    blocksize^2 channels that make one output channel (or one input channel's copies) are
    one unit. Exact with nothing pruned; pruned, smaller and valid."""
    from conftest import _init, make_model
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)

    def normal(scale: float, *shape: int) -> np.ndarray:
        return rng.normal(0, scale, shape).astype(np.float32)

    c1, c2 = (16, 4) if op == "DepthToSpace" else (4, 16)
    attrs = {"blocksize": 2, **({"mode": mode} if mode else {})}
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node(op, ["r"], ["m"], **attrs),
             helper.make_node("Conv", ["m", "w2", "b2"], ["c"]),
             helper.make_node("Relu", ["c"], ["rc"]),
             helper.make_node("GlobalAveragePool", ["rc"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wh", "bh"], ["logits"], transB=1)]
    inits = [_init("w1", normal(0.4, c1, 3, 3, 3)), _init("b1", normal(0.1, c1)),
             _init("w2", normal(0.4, 8, c2, 1, 1)), _init("b2", normal(0.1, 8)),
             _init("wh", normal(0.5, 4, 8)), _init("bh", normal(0.1, 4))]
    model = make_model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                             ["N", 3, 8, 8])],
                       [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
                       inits)
    x = rng.normal(size=(160, 3, 8, 8)).astype(np.float32)
    dec = Decomposer(model, x, None, Settings(device="cpu", seed=0, align=1))
    full = dec.build(0, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x[:40])[:, 0],
                               logodds_from_logits(ort_run(model, x[:40]))[:, 0], atol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < model_stats(model).macs
    assert ort_run(half.proto, x[:5]).shape == (5, 1)
    # The moved tensor's kept channels are the parent's: the units match the op's layout.
    from onnxdecomp.channels import plain_slice
    from onnxdecomp.decompose.decomposer import build_module
    from onnxdecomp.irutil import with_outputs
    from onnxdecomp.runtime import Runner

    sliced = build_module(dec.parent, half.removed, plain_slice, lambda m: None, check=True)
    moved = next(n for n in dec.parent.model.graph if n.op_type == op).outputs[0]
    kept = dec.parent.cg.kept_channels(moved, half.removed)
    want = Runner(with_outputs(dec.parent.proto, [moved.name]), device="cpu").run(x[:20])[1]
    got = Runner(with_outputs(sliced, [moved.name]), device="cpu").run(x[:20])[1]
    np.testing.assert_allclose(got, want[:, kept], atol=1e-6)


def test_local_functions_are_inlined(exported: Path) -> None:
    """TorchScript's ``export_modules_as_functions``: each inverted residual a local function
    called by a node of its own domain; the modules hold plain ops and no function."""
    path = exported / "functions.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_net("mobilenetv2"), (_x("mobilenetv2", 2, seed=1),), str(path),
                          dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "N"}},
                          export_modules_as_functions={InvertedResidual})
    assert onnx.load(str(path)).functions  # the export really holds functions
    x = _x("mobilenetv2", 240, seed=0).numpy()
    dec = Decomposer(str(path), x, None, Settings(device="cpu", seed=0, align=1))
    full = dec.build(0, 1.0, check=True).proto
    parent = logodds_from_logits(ort_run(str(path), x[:50]))[:, 0]
    np.testing.assert_allclose(ort_run(full, x[:50])[:, 0], parent, atol=1e-5, rtol=1e-5)
    half = dec.build(0, 0.5, check=True).proto
    assert not half.functions and model_stats(half).macs < model_stats(full).macs


class FusedQKVWithBias(nn.Module):
    """timm's attention: one projection viewed [N, L, 3, H, d] (q, k and v on one axis, the
    heads on the next) and a learned bias per head over the scores (Swin's relative
    positions)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 32, 4, 4)
        self.qkv, self.out = nn.Linear(32, 96), nn.Linear(32, 32)
        self.bias = nn.Parameter(torch.randn(4, 16, 16) * 0.5)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        n, length, _ = t.shape
        q, k, v = self.qkv(t).reshape(n, length, 3, 4, 8).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * 8 ** -0.5 + self.bias).softmax(-1)
        c = (a @ v).transpose(1, 2).reshape(n, length, 32)
        return self.head((t + self.out(c)).mean(1))


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_heads_of_a_fused_qkv_view_go_whole(exported: Path, exporter: str) -> None:
    """One head removed: the view says 3 heads of 8 (not 4 of 6), the bias keeps 3 heads'
    rows, and the kept heads' context is the parent's."""
    from onnxdecomp.channels import plain_slice
    from onnxdecomp.decompose.decomposer import build_module
    from onnxdecomp.irutil import with_outputs
    from onnxdecomp.runtime import Runner

    torch.manual_seed(0)
    path = torch_export(FusedQKVWithBias().eval(), _x("vit", 2, seed=1), exporter,
                        exported / f"fused_qkv-{exporter}.onnx")
    x = _x("vit", 240, seed=0).numpy()
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    assert_full_module_exact(dec, path, x)
    head = next(r for r, cl in dec.clusters.items() if cl in dec.head_clusters)
    module = build_module(dec.parent, {head}, plain_slice, lambda m: None, check=True)
    products = [n for n in dec.parent.model.graph if n.op_type == "MatMul" and
                all(v.const_value is None for v in n.inputs)]
    context = products[-1].outputs[0]  # [N, H, L, d]
    kept = dec.parent.cg.kept_channels(context, {head})
    assert len(kept) == 24  # 3 heads of 8
    want = Runner(with_outputs(dec.parent.proto, [context.name]), device="cpu").run(x[:20])[1]
    got = Runner(with_outputs(module, [context.name]), device="cpu").run(x[:20])[1]
    heads = sorted({int(c) // 8 for c in kept})
    np.testing.assert_allclose(got, want[:, heads], atol=1e-5)


class PreNormBlock(nn.Module):
    """A pre-norm transformer block over patch tokens: every dense layer reads the residual
    stream through a LayerNorm, and the head reads it through one more."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 32, 4, 4)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(32), nn.LayerNorm(32), \
            nn.LayerNorm(32)
        self.qkv, self.out = nn.Linear(32, 96), nn.Linear(32, 32)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        n, length, _ = t.shape
        q, k, v = self.qkv(self.norm1(t)).reshape(n, length, 3, 4, 8).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * 8 ** -0.5).softmax(-1) @ v
        t = t + self.out(a.transpose(1, 2).reshape(n, length, 32))
        t = t + self.mlp(self.norm2(t))
        return self.head(self.norm3(t.mean(1)))


def test_refit_criterion_sees_through_layer_norm(exported: Path) -> None:
    """The output projection and the MLP's second layer write the stream that only LayerNorms
    read: their outputs' sensitivities come back through them (times |scale|), so heads
    and MLP units are ranked by what they do to the class, not all at zero."""
    from onnxdecomp.decompose.criteria import _output_sens, class_concern, propagate_logodds

    torch.manual_seed(0)
    path = torch_export(PreNormBlock().eval(), _x("vit", 2, seed=1), "dynamo",
                        exported / "prenorm.onnx")
    dec = Decomposer(path, _x("vit", 240, seed=0).numpy(), None,
                     Settings(device="cpu", seed=0, align=1))
    cg = dec.parent.cg
    assert len(cg.normalised) == 3
    concern = class_concern(dec.profile, 0)
    sens, _ = propagate_logodds(concern, cg, dec.profile)
    writers = [c for c in cg.consumers if c.node.outputs[0].name and
               c.kind in ("seq", "gemm") and c.value.shape is not None and
               c.node.outputs[0].shape is not None and c.node.outputs[0].shape[-1] == 32
               and not c.node.outputs[0].is_graph_output()]
    assert writers
    for cons in writers:  # the output projection and the MLP's second layer
        assert np.all(_output_sens(cons, cg, concern, sens) > 0)
