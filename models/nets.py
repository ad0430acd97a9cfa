"""PyTorch definitions of the model zoo's networks.

Every net takes RAW pixel values as float32 (0..255; 0..16 for scikit-learn digits) and
normalises inside the graph as its first op, so the exported ONNX file is fed exactly what
``onnxdecomp eval MODEL --data <spec>`` feeds: raw pixels, NCHW (MLPs: ``[N, 784]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["Normalize", "MLP", "LeNet5", "BasicBlock", "ResNet", "DigitsCNN", "InvertedResidual",
           "MobileNetV2Mini", "count_params", "random_batchnorm"]


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def random_batchnorm(model: nn.Module, seed: int = 1, affine: bool = False) -> None:
    """Draw every BatchNorm2d's running mean (-0.5..0.5) and variance (0.5..2), and with
    ``affine`` its weight (0.5..1.5) and bias (-0.3..0.3), module by module from one seeded
    generator: an untrained net whose BatchNorm folding is not the identity (the tests'
    and benchmarks' random-weight nets)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5, generator=gen)
                mod.running_var.uniform_(0.5, 2.0, generator=gen)
                if affine:
                    mod.weight.uniform_(0.5, 1.5, generator=gen)
                    mod.bias.uniform_(-0.3, 0.3, generator=gen)


class Normalize(nn.Module):
    """``(x / scale - mean) / std``, per channel for 4-D input, one scalar for 2-D input.

    The constants are buffers so that they travel with the state dict and end up as
    initializers in the ONNX graph.
    """

    def __init__(self, scale: float, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std differ in length: {len(mean)} vs {len(std)}")
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]))
        self.register_buffer("std", torch.tensor([float(s) for s in std]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean, self.std
        if x.dim() == 4:  # NCHW: broadcast over channels
            mean, std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
        return (x / self.scale - mean) / std

    def extra_repr(self) -> str:
        return f"scale={self.scale.item():g}, mean={self.mean.tolist()}, std={self.std.tolist()}"


class MLP(nn.Module):
    """Fully connected ReLU net: ``hidden_layers`` x (Linear + ReLU), then Linear to logits.

    49 units a layer is the FSE'20 modularity setting. Input: ``[N, in_features]`` raw pixels.
    """

    def __init__(
        self,
        hidden_layers: int,
        units: int = 49,
        in_features: int = 784,
        classes: int = 10,
        scale: float = 255.0,
        mean: float = 0.0,
        std: float = 1.0,
    ) -> None:
        super().__init__()
        if hidden_layers < 1:
            raise ValueError("an MLP needs at least one hidden layer")
        self.norm = Normalize(scale, [mean], [std])
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(self.norm(x)))


class LeNet5(nn.Module):
    """Classic LeNet-5 (ReLU, max pooling) for ``[N, 1, 28, 28]`` raw pixels."""

    def __init__(
        self, classes: int = 10, scale: float = 255.0, mean: float = 0.0, std: float = 1.0
    ) -> None:
        super().__init__()
        self.norm = Normalize(scale, [mean], [std])
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),  # 28x28 -> 28x28
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 14x14
            nn.Conv2d(6, 16, 5),  # -> 10x10
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 5x5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.norm(x)))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, ReLU after the add (He et al. 2016).

    Where the shape changes the shortcut is a 1x1 conv + BN projection (option B). ``norm``
    makes each normalisation layer (BatchNorm by default; GroupNorm for the GN variant).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 norm: Callable[[int], nn.Module] = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                norm(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet of depth ``6n + 2``: stages of 16/32/64 channels, GAP, Linear.

    ResNet-8 (n=1) and ResNet-20 (n=3) are the zoo's two; input ``[N, in_channels, H, W]``.
    """

    def __init__(
        self,
        depth: int,
        in_channels: int = 3,
        classes: int = 10,
        scale: float = 255.0,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2 with n >= 1, got {depth}")
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError("mean and std need one value per input channel")
        n = (depth - 2) // 6
        self.depth = depth
        self.norm = Normalize(scale, mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), norm(16), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        in_planes = 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride, norm))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)  # ONNX: GlobalAveragePool or ReduceMean
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Zero-init the last BN of each residual branch: every block starts as identity,
        # which trains faster and more stably on short schedules (Goyal et al. 2017).
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(self.norm(x)))
        return self.fc(self.flatten(self.pool(x)))


class DigitsCNN(nn.Module):
    """Tiny CNN for scikit-learn's 8x8 digits (raw values 0..16), ``[N, 1, 8, 8]``.

    About ten thousand parameters: it is the fresh-machine demo and trains in seconds.
    """

    def __init__(
        self, classes: int = 10, c1: int = 8, c2: int = 16, hidden: int = 32, scale: float = 16.0
    ) -> None:
        super().__init__()
        self.norm = Normalize(scale, [0.0], [1.0])  # digits: plain x / 16
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * 4 * 4, hidden),
            nn.ReLU(),
            nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.norm(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, ReLU6, 3x3 depthwise, ReLU6, linear 1x1
    projection; the input added back where the shape allows (Sandler et al. 2018)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        hidden = cin * expand
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2Mini(nn.Module):
    """A small MobileNetV2 for 28x28 images: stem 16, inverted residuals 16-24-24-32-32
    (expansion 4, depthwise 3x3), 1x1 to 64, global average pool, dropout, linear.

    The head flattens with ``x.view(x.size(0), -1)``, which the TorchScript exporter writes
    as a Reshape to a computed shape: with the zoo's export at opset 11 (ReLU6 as Clip with
    min/max inputs) it is the idiom of older PyTorch code.
    """

    def __init__(self, in_channels: int = 1, classes: int = 10, scale: float = 255.0,
                 mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,)) -> None:
        super().__init__()
        self.norm = Normalize(scale, mean, std)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU6())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 1), InvertedResidual(16, 24, 2),
            InvertedResidual(24, 24, 1), InvertedResidual(24, 32, 2),
            InvertedResidual(32, 32, 1),
        )
        self.last = nn.Sequential(nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU6(), nn.AdaptiveAvgPool2d(1))
        self.dropout = nn.Dropout(0.1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last(self.blocks(self.stem(self.norm(x))))
        return self.fc(self.dropout(x.view(x.size(0), -1)))


class ViTBlock(nn.Module):
    """Pre-norm encoder block: ``F.scaled_dot_product_attention`` over ``heads`` heads (one
    q, k, v projection viewed [N, T, 3, H, d]), then a GELU MLP; both residual."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        n, length, dim = t.shape
        q, k, v = self.qkv(self.norm1(t)).reshape(
            n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v)
        t = t + self.proj(a.transpose(1, 2).reshape(n, length, dim))
        return t + self.mlp(self.norm2(t))


class ViTMini(nn.Module):
    """A small vision transformer: 4x4 patches embedded to ``dim`` with learned positions,
    ``depth`` pre-norm blocks, mean over the tokens, LayerNorm, linear head."""

    def __init__(self, in_channels: int = 1, size: int = 28, classes: int = 10,
                 dim: int = 48, depth: int = 2, heads: int = 4, hidden: int = 96,
                 scale: float = 255.0, mean: Sequence[float] = (0.0,),
                 std: Sequence[float] = (1.0,)) -> None:
        super().__init__()
        self.norm = Normalize(scale, mean, std)
        self.embed = nn.Conv2d(in_channels, dim, 4, 4)
        self.pos = nn.Parameter(torch.zeros(1, (size // 4) ** 2, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads, hidden) for _ in range(depth)])
        self.out_norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(self.norm(x)).flatten(2).transpose(1, 2) + self.pos
        return self.fc(self.out_norm(self.blocks(t).mean(1)))
