"""Train, export and register one model of the zoo.

    python -m models.train NAME [--epochs E] [--seed 0] [--data-root ../shared/data]
                                [--out models/NAME.onnx] [--threads 2]

Trains on the train split only, exports to ONNX (input ``input``, output ``logits``, batch
axis ``N``, weights inside the file), checks ONNX Runtime against torch, measures top-1 on
the full test split with ONNX Runtime fed raw float32 pixels (exactly what ``onnxdecomp eval``
feeds), and updates this model's entry in ``models/zoo.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.nets import (
    MLP,
    DigitsCNN,
    LeNet5,
    MobileNetV2Mini,
    ResNet,
    ViTMini,
    count_params,
)

MODELS_DIR = Path(__file__).resolve().parent
ZOO_PATH = MODELS_DIR / "zoo.json"
DEFAULT_DATA_ROOT = "../shared/data"
CACHE_DIR = Path(tempfile.gettempdir()) / "onnxdecomp-cache"
TORCHSCRIPT_OPSET = 17
CHECK_SAMPLES = 64
CHECK_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Stats:
    """Per-channel statistics of the train split, in units of ``x / scale``."""

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Recipe:
    """Everything that defines one zoo entry apart from epochs and seed."""

    name: str
    dataset: str  # label for reports, e.g. "CIFAR-10 (JPEG q75)"
    data: str  # path under the data root, or "sklearn:digits"
    reader: str  # "idx" | "image_tree" | "sklearn_digits"
    architecture: str
    build: Callable[[Stats], nn.Module]
    flat: bool  # MLPs take [N, H*W]; everything else NCHW
    exporter: str  # "dynamo" | "torchscript"
    epochs: int
    optimizer: str  # "sgd" | "adam"
    lr: float  # peak learning rate of the one-cycle schedule
    batch_size: int = 128
    weight_decay: float = 5e-4
    augment: bool = False  # random crop (4-pixel padding) + horizontal flip
    scarce: tuple[int, int] | None = None  # (class, n): train on only n images of that class
    opset: int | None = None  # TorchScript's opset (default TORCHSCRIPT_OPSET); dynamo's if set


def _mlp(hidden: int) -> Callable[[Stats], nn.Module]:
    return lambda s: MLP(hidden, units=49, scale=s.scale, mean=s.mean[0], std=s.std[0])


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            "cnn_digits",
            "scikit-learn digits",
            "sklearn:digits",
            "sklearn_digits",
            "DigitsCNN: conv8-conv16-maxpool-fc32-fc10",
            lambda s: DigitsCNN(),
            flat=False,
            exporter="torchscript",
            epochs=30,
            optimizer="sgd",
            lr=0.1,
            batch_size=32,
        ),
        Recipe(
            "mlp1_mnist",
            "MNIST",
            "mnist",
            "idx",
            "MLP 784-49-10 (1 hidden layer, ReLU)",
            _mlp(1),
            flat=True,
            exporter="torchscript",
            epochs=15,
            optimizer="adam",
            lr=3e-3,
            weight_decay=0.0,
        ),
        Recipe(
            "mlp4_mnist",
            "MNIST",
            "mnist",
            "idx",
            "MLP 784-49-49-49-49-10 (4 hidden layers, ReLU)",
            _mlp(4),
            flat=True,
            exporter="dynamo",
            epochs=15,
            optimizer="adam",
            lr=3e-3,
            weight_decay=0.0,
        ),
        Recipe(
            "mlp1_fmnist",
            "Fashion-MNIST",
            "fashion-mnist",
            "idx",
            "MLP 784-49-10 (1 hidden layer, ReLU)",
            _mlp(1),
            flat=True,
            exporter="dynamo",
            epochs=15,
            optimizer="adam",
            lr=3e-3,
            weight_decay=0.0,
        ),
        Recipe(
            "mlp4_fmnist",
            "Fashion-MNIST",
            "fashion-mnist",
            "idx",
            "MLP 784-49-49-49-49-10 (4 hidden layers, ReLU)",
            _mlp(4),
            flat=True,
            exporter="torchscript",
            epochs=15,
            optimizer="adam",
            lr=3e-3,
            weight_decay=0.0,
        ),
        Recipe(
            "lenet5_mnist",
            "MNIST",
            "mnist",
            "idx",
            "LeNet-5 (ReLU, max pooling)",
            lambda s: LeNet5(scale=s.scale, mean=s.mean[0], std=s.std[0]),
            flat=False,
            exporter="dynamo",
            epochs=10,
            optimizer="sgd",
            lr=0.05,
        ),
        Recipe(
            "vit_mnist",
            "MNIST",
            "mnist",
            "idx",
            "ViT-mini: 4x4 patches to 48, learned positions, 2 pre-norm blocks (4 heads "
            "through scaled_dot_product_attention, GELU MLP 96), mean, LayerNorm, linear; "
            "dynamo opset 23: ONNX's Attention and the qkv view [N, T, 3, H, d]",
            lambda s: ViTMini(scale=s.scale, mean=s.mean, std=s.std),
            flat=False,
            exporter="dynamo",
            epochs=6,
            optimizer="adam",
            lr=2e-3,
            weight_decay=0.0,
            opset=23,
        ),
        Recipe(
            "lenet5_mnist_five500",
            "MNIST, only 500 training images of digit 5",
            "mnist",
            "idx",
            "LeNet-5 (ReLU, max pooling)",
            lambda s: LeNet5(scale=s.scale, mean=s.mean[0], std=s.std[0]),
            flat=False,
            exporter="torchscript",
            epochs=10,
            optimizer="sgd",
            lr=0.05,
            scarce=(5, 500),
        ),
        Recipe(
            "lenet5_fmnist_shirt100",
            "Fashion-MNIST, only 100 training images of Shirt (class 6)",
            "fashion-mnist",
            "idx",
            "LeNet-5 (ReLU, max pooling)",
            lambda s: LeNet5(scale=s.scale, mean=s.mean[0], std=s.std[0]),
            flat=False,
            exporter="dynamo",
            epochs=10,
            optimizer="sgd",
            lr=0.05,
            scarce=(6, 100),
        ),
        Recipe(
            "resnet8_fmnist",
            "Fashion-MNIST",
            "fashion-mnist",
            "idx",
            "ResNet-8 (CIFAR-style, 16/32/64 channels, 1x1-conv projection shortcuts)",
            lambda s: ResNet(8, in_channels=1, scale=s.scale, mean=s.mean, std=s.std),
            flat=False,
            exporter="torchscript",
            epochs=6,
            optimizer="sgd",
            lr=0.1,
        ),
        Recipe(
            "resnet8gn_fmnist",
            "Fashion-MNIST",
            "fashion-mnist",
            "idx",
            "ResNet-8 with GroupNorm (groups of 4 channels) instead of BatchNorm; dynamo "
            "opset 21: the GroupNormalization op",
            lambda s: ResNet(8, in_channels=1, scale=s.scale, mean=s.mean, std=s.std,
                             norm=lambda c: nn.GroupNorm(c // 4, c)),
            flat=False,
            exporter="dynamo",
            epochs=6,
            optimizer="sgd",
            lr=0.1,
            opset=21,
        ),
        Recipe(
            "mobilenetv2_fmnist",
            "Fashion-MNIST",
            "fashion-mnist",
            "idx",
            "MobileNetV2-mini (inverted residuals 16-24-24-32-32, depthwise 3x3, ReLU6, "
            "view-flatten; TorchScript opset 11)",
            lambda s: MobileNetV2Mini(1, scale=s.scale, mean=s.mean, std=s.std),
            flat=False,
            exporter="torchscript",
            epochs=6,
            optimizer="sgd",
            lr=0.1,
            opset=11,
        ),
        Recipe(
            "resnet20_cifar10",
            "CIFAR-10 (JPEG q75)",
            "cifar10-jpg/cifar10-jpg-q75.tar.gz",
            "image_tree",
            "ResNet-20 (CIFAR-style, 16/32/64 channels, 1x1-conv projection shortcuts)",
            lambda s: ResNet(20, in_channels=3, scale=s.scale, mean=s.mean, std=s.std),
            flat=False,
            exporter="dynamo",
            epochs=12,
            optimizer="sgd",
            lr=0.15,
            augment=True,
        ),
    ]
}


# --------------------------------------------------------------------------- data


def _data_location(recipe: Recipe, data_root: str) -> str:
    if recipe.reader == "sklearn_digits":
        return recipe.data
    return os.path.join(data_root, recipe.data)


def _read_image_tree_cached(path: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode a JPEG tree once and keep the arrays in /tmp: 50k JPEGs take a while."""
    from onnxdecomp.data import read_image_tree

    st = os.stat(path)
    key = f"{Path(path).name}-{st.st_size}-{int(st.st_mtime)}-{split}"
    fx, fy = CACHE_DIR / f"{key}-x.npy", CACHE_DIR / f"{key}-y.npy"
    if fx.exists() and fy.exists():
        return np.load(fx), np.load(fy)
    x, y, _ = read_image_tree(path, split=split)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for f, a in ((fx, x), (fy, y)):
        tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, a)
        os.replace(tmp, f)
    return x, y


def load_split(recipe: Recipe, data_root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8 pixels shaped as the model's input (NCHW, or [N, H*W] for MLPs), int64 labels."""
    if recipe.reader == "sklearn_digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        # Same split and order as onnxdecomp.data's 'sklearn:digits' spec.
        idx = np.arange(len(d.target))
        tr, te = train_test_split(idx, test_size=0.25, random_state=0, stratify=d.target)
        keep = np.sort(tr if split == "train" else te)
        x, y = d.images[keep], d.target[keep]
        x = x.astype(np.uint8)[:, None, :, :]  # values 0..16, exact in uint8
    elif recipe.reader == "idx":
        from onnxdecomp.data import read_idx

        x, y = read_idx(_data_location(recipe, data_root), split=split)
        x = x[:, None, :, :]
    elif recipe.reader == "image_tree":
        x, y = _read_image_tree_cached(_data_location(recipe, data_root), split)
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC -> NCHW
    else:  # pragma: no cover - registry is static
        raise ValueError(recipe.reader)
    if recipe.flat:
        x = x.reshape(len(x), -1)
    if recipe.scarce is not None and split == "train":
        x, y = scarce_split(x, np.asarray(y), *recipe.scarce)
    # Writable: torch.from_numpy warns on the read-only buffers the IDX reader returns.
    return np.require(x, requirements=["C", "W"]), np.asarray(y, dtype=np.int64)


def scarce_split(x: np.ndarray, y: np.ndarray, cls: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """All samples but ``n`` of class ``cls`` (a seeded draw, independent of the training
    seed, so every seed sees the same scarce class), in the original order."""
    own = np.flatnonzero(y == cls)
    kept = np.random.default_rng(0).choice(own, size=min(n, len(own)), replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(y != cls), kept]))
    return x[keep], y[keep]


def train_stats(recipe: Recipe, x: np.ndarray) -> Stats:
    """Normalisation constants measured on the train split (digits: plain x / 16)."""
    if recipe.reader == "sklearn_digits":
        return Stats(16.0, (0.0,), (1.0,))
    scale = 255.0
    xf = x.astype(np.float64) / scale
    axes = (0,) if recipe.flat else (0, 2, 3)
    mean = xf.mean(axis=axes).reshape(-1)
    std = xf.std(axis=axes).reshape(-1)
    if recipe.flat:  # one scalar for the whole image
        mean, std = np.array([xf.mean()]), np.array([xf.std()])
    return Stats(
        scale, tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)
    )


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per-sample random crop from a zero-padded copy plus random horizontal flip (NCHW)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]  # [B, H, 1]
    cols = (ox[:, None] + torch.arange(w))[:, None, :]  # [B, 1, W]
    # Advanced indices first, then the channel slice: result is [B, H, W, C].
    out = padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    flip = torch.rand(b, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out).contiguous()


# --------------------------------------------------------------------------- training


def set_determinism(seed: int, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    try:
        torch.use_deterministic_algorithms(True)
    except Exception as exc:  # noqa: BLE001 - keep going; report why
        print(f"note: deterministic algorithms unavailable: {exc}", flush=True)


def train(
    model: nn.Module, recipe: Recipe, x: np.ndarray, y: np.ndarray, epochs: int, seed: int
) -> float:
    """One-cycle training on the train split; returns wall seconds spent."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = len(xt)
    gen = torch.Generator().manual_seed(seed)  # shuffling and augmentation
    if recipe.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=recipe.weight_decay,
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = math.ceil(n / recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=epochs * steps, pct_start=0.25
    )
    loss_fn = nn.CrossEntropyLoss()  # no label smoothing: we want clean logits
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        total_loss, correct = 0.0, 0
        for i in range(steps):
            idx = perm[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            xb, yb = xt[idx], yt[idx]
            if recipe.augment:
                xb = random_crop_flip(xb, gen)
            logits = model(xb.float())
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
        print(
            f"epoch {epoch:3d}/{epochs}  loss {total_loss / n:.4f}  train_acc {correct / n:.4f}  "
            f"lr {sched.get_last_lr()[0]:.4g}  time {time.perf_counter() - t0:.1f}s  "
            f"elapsed {time.perf_counter() - start:.0f}s",
            flush=True,
        )
    return time.perf_counter() - start


@torch.no_grad()
def torch_top1(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        logits = model(torch.from_numpy(x[i : i + batch]).float())
        correct += int((logits.argmax(1).numpy() == y[i : i + batch]).sum())
    return correct / len(x)


# --------------------------------------------------------------------------- export


def export_onnx(model: nn.Module, example: torch.Tensor, out: Path, exporter: str,
                opset: int | None = None) -> None:
    """Export with a dynamic batch axis "N" and the weights inside the .onnx file."""
    import onnx

    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    if exporter == "dynamo":
        torch.onnx.export(
            model,
            (example,),
            str(out),
            dynamo=True,
            external_data=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("N")},),
            verbose=False,
            optimize=True,
            **({"opset_version": opset} if opset else {}),
        )
    else:
        # The TorchScript exporter is deprecated, but the zoo deliberately covers both.
        warnings.filterwarnings("ignore", "You are using the legacy", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(out),
            dynamo=False,
            opset_version=opset or TORCHSCRIPT_OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            do_constant_folding=True,
        )
    sidecar = Path(str(out) + ".data")
    if sidecar.exists():
        sidecar.unlink()
    m = onnx.load(str(out))
    if m.graph.initializer and any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer
    ):
        raise RuntimeError(f"{out}: weights were written outside the .onnx file")
    # Make the batch axis read "N" on both ends whatever the exporter called it.
    for vi in list(m.graph.input) + list(m.graph.output):
        dim0 = vi.type.tensor_type.shape.dim[0]
        if dim0.dim_param != "N":
            old = dim0.dim_param
            dim0.dim_param = "N"
            for v in m.graph.value_info:  # keep intermediate shapes consistent
                for d in v.type.tensor_type.shape.dim:
                    if old and d.dim_param == old:
                        d.dim_param = "N"
    onnx.save(m, str(out))
    onnx.checker.check_model(str(out), full_check=True)


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_top1(sess, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    correct = 0
    for i in range(0, len(x), batch):
        (logits,) = sess.run(["logits"], {"input": x[i : i + batch].astype(np.float32)})
        correct += int((logits.argmax(1) == y[i : i + batch]).sum())
    return correct / len(x)


def check_against_torch(model: nn.Module, sess, x: np.ndarray) -> float:
    xs = x[:CHECK_SAMPLES].astype(np.float32)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(xs)).numpy()
    (got,) = sess.run(["logits"], {"input": xs})
    diff = float(np.abs(ref - got).max())
    if not diff < CHECK_TOLERANCE:
        raise RuntimeError(
            f"ONNX Runtime differs from torch by {diff:.3g} (limit {CHECK_TOLERANCE})"
        )
    return diff


# --------------------------------------------------------------------------- zoo


def update_zoo(entry: dict, zoo_path: Path = ZOO_PATH) -> None:
    """Read-modify-write this model's entry; others kept, sorted by name, atomic replace."""
    zoo = {"models": []}
    if zoo_path.exists():
        zoo = json.loads(zoo_path.read_text())
    models = [m for m in zoo.get("models", []) if m.get("name") != entry["name"]]
    models.append(entry)
    zoo["models"] = sorted(models, key=lambda m: m["name"])
    fd, tmp = tempfile.mkstemp(dir=zoo_path.parent, prefix=".zoo.", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(zoo, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, zoo_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- main


def checkpoint_path(name: str, seed: int, epochs: int) -> Path:
    return CACHE_DIR / f"{name}-seed{seed}-e{epochs}.pt"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n")[0])
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT)
    p.add_argument("--out", default=None, help="default: models/NAME.onnx")
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    p.add_argument("--no-zoo", action="store_true", help="do not touch models/zoo.json")
    p.add_argument(
        "--reuse-checkpoint",
        action="store_true",
        help="skip training when /tmp holds this name/seed/epochs' trained weights (re-export)",
    )
    args = p.parse_args(argv)

    recipe = RECIPES[args.name]
    epochs = args.epochs if args.epochs is not None else recipe.epochs
    default_out = MODELS_DIR / f"{recipe.name}.onnx"
    out = Path(args.out) if args.out else default_out
    set_determinism(args.seed, args.threads)

    t0 = time.perf_counter()
    xtr, ytr = load_split(recipe, args.data_root, "train")
    xte, yte = load_split(recipe, args.data_root, "test")
    stats = train_stats(recipe, xtr)
    print(
        f"{recipe.name}: train {xtr.shape} test {xte.shape} loaded in "
        f"{time.perf_counter() - t0:.1f}s; {stats}",
        flush=True,
    )

    model = recipe.build(stats)
    params = count_params(model)
    print(
        f"{recipe.architecture}: {params} parameters; {epochs} epochs, seed {args.seed}", flush=True
    )

    ckpt = checkpoint_path(recipe.name, args.seed, epochs)
    if args.reuse_checkpoint and ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu")
        model.load_state_dict(saved["state_dict"])
        train_seconds = saved["train_seconds"]
        print(f"reused {ckpt} (trained in {train_seconds:.0f}s)", flush=True)
    else:
        train_seconds = train(model, recipe, xtr, ytr, epochs, args.seed)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": model.state_dict(), "train_seconds": train_seconds}, ckpt)
    model.eval()
    t_top1 = torch_top1(model, xte, yte)
    print(f"trained in {train_seconds:.0f}s; torch test top-1 {t_top1:.4f}", flush=True)

    export_onnx(model, torch.from_numpy(xte[:2].astype(np.float32)), out, recipe.exporter,
                recipe.opset)
    sess = ort_session(out, args.threads)
    diff = check_against_torch(model, sess, xte)
    top1 = ort_top1(sess, xte, yte)
    import onnx

    opset = next(o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx"))
    print(
        f"exported {out} ({out.stat().st_size / 1024:.0f} KiB, {recipe.exporter}, opset {opset}); "
        f"ORT vs torch max|diff| {diff:.2e}; ONNX Runtime test top-1 {top1:.4f}",
        flush=True,
    )

    if not args.no_zoo:
        command = (
            f"python -m models.train {recipe.name} --epochs {epochs} --seed {args.seed} "
            f"--threads {args.threads} --data-root {args.data_root}"
        )
        if out.resolve() != default_out:
            command += f" --out {args.out}"
        entry = {
            "name": recipe.name,
            "file": os.path.relpath(out.resolve(), ZOO_PATH.parent),
            "dataset": recipe.dataset,
            "data": _data_location(recipe, args.data_root),
            "split": "test",
            "architecture": recipe.architecture,
            "exporter": recipe.exporter,
            "opset": opset,
            "params": params,
            "top1": round(top1, 4),
            "epochs": epochs,
            "train_seconds": round(train_seconds, 1),
            "seed": args.seed,
            "torch": torch.__version__,
            "command": command,
        }
        update_zoo(entry)
        print(f"updated {ZOO_PATH}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
