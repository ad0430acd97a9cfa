"""Train, export and register one recurrent text model of the zoo.

    python -m models.train_text NAME [--epochs E] [--seed 0] [--data-root ../shared/data]
                                     [--threads 2] [--no-zoo]

Part-of-speech taggers (``conll_*``) on CoNLL-2000 with the 12 universal tags (train split;
test for the recorded token accuracy, padding excluded): an embedding, recurrent layers
over the whole sentence and a linear head at every step, logits [N, T, 12]; the data and the
vocabulary (``models/conll2000_vocab.json``) are described in :mod:`models.tags`.

Intent classifiers on CLINC150's 150 in-scope intents (train split; val for nothing; test
for the recorded top-1): an embedding, a recurrent layer (ONNX RNN, LSTM or GRU), the final
state of the last layer (both directions' for a bidirectional one) and a linear head. The
vocabulary (``models/clinc150_vocab.json``, built from the train split, words seen twice)
is written on first use and shared by every CLINC model; ``python -m models.text`` turns
text into the ``.npz`` the command line takes with it. ``clinc_transformer`` is a small
transformer encoder instead, with two inputs as transformer exporters write them
(``input_ids``, ``attention_mask``: ``python -m models.text --attention-mask``). Top-1 is
measured with ONNX Runtime on the arrays of that ``.npz``, exactly what ``onnxdecomp eval``
feeds.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.nets import count_params
from models.tags import TagVocab, conll_arrays, read_conll2000
from models.text import CLINC_VOCAB, CONLL_VOCAB, Vocab, clinc_arrays, read_clinc
from models.train import (
    DEFAULT_DATA_ROOT,
    MODELS_DIR,
    export_onnx,
    ort_session,
    set_determinism,
    update_zoo,
)

MAX_LEN = 20
CHECK_TOLERANCE = 1e-4


class IntentRNN(nn.Module):
    """Embedding -> RNN/LSTM/GRU -> final state of the last layer -> linear."""

    def __init__(self, vocab: int, classes: int, cell: str, embed: int, hidden: int,
                 layers: int = 1, bidirectional: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.rnn = getattr(nn, cell)(embed, hidden, num_layers=layers, batch_first=True,
                                     bidirectional=bidirectional)
        self.bidirectional = bidirectional
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(self.embed(ids))
        h = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n)
        last = torch.cat([h[-2], h[-1]], dim=1) if self.bidirectional else h[-1]
        return self.head(last)


class EncoderLayer(nn.Module):
    """A post-norm transformer encoder layer written as Hugging Face's BERT writes it:
    query, key and value projections viewed as heads and permuted, scaled dot products with
    an additive mask (-10000 on padding), softmax, the heads joined and projected, then a
    GELU feed-forward layer."""

    def __init__(self, width: int, heads: int, ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.heads, self.scale = heads, 1.0 / math.sqrt(width // heads)
        self.query, self.key, self.value, self.out = (nn.Linear(width, width)
                                                      for _ in range(4))
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.up, self.down = nn.Linear(width, ff), nn.Linear(ff, width)
        self.drop = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.size()
        return x.view(n, t, self.heads, c // self.heads).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale + bias
        context = torch.matmul(self.drop(torch.softmax(scores, dim=-1)), v)
        context = context.permute(0, 2, 1, 3).contiguous()
        x = self.norm1(x + self.drop(self.out(context.view(x.size(0), x.size(1), -1))))
        return self.norm2(x + self.drop(self.down(nn.functional.gelu(self.up(x)))))


class IntentTransformer(nn.Module):
    """What a transformer exporter writes for a text classifier (the inputs named as
    Hugging Face names them): token and position embeddings, one encoder layer whose
    attention ignores padding (``EncoderLayer``), the mean over the real tokens, a linear
    head. Two inputs: ``input_ids`` and ``attention_mask`` (1 on tokens, 0 on padding), both
    [N, T] int64."""

    def __init__(self, vocab: int, classes: int, embed: int, heads: int, ff: int,
                 max_len: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.position = nn.Embedding(max_len, embed)
        self.encoder = EncoderLayer(embed, heads, ff)
        self.head = nn.Linear(embed, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.embed(input_ids) + self.position(steps)[None]
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        h = self.encoder(h, (1.0 - m.transpose(1, 2)[:, None]) * -10000.0)
        return self.head((h * m).sum(1) / m.sum(1).clamp(min=1.0))


class TaggerRNN(IntentRNN):
    """Embedding -> RNN/LSTM/GRU over the sentence -> linear at every step: [N, T, tags]."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        seq, _ = self.rnn(self.embed(ids))
        return self.head(seq)


@dataclass(frozen=True)
class TextRecipe:
    name: str
    cell: str
    embed: int
    hidden: int
    layers: int
    bidirectional: bool
    exporter: str
    epochs: int
    lr: float = 3e-3
    batch_size: int = 64

    @property
    def tagger(self) -> bool:
        return self.name.startswith("conll_")

    @property
    def architecture(self) -> str:
        kind = f"{'bidirectional ' if self.bidirectional else ''}{self.layers}-layer {self.cell}"
        if self.cell == "Transformer":
            return (f"IntentTransformer: embedding {self.embed} with positions, 1 BERT-style "
                    f"encoder layer (4 heads, GELU feed-forward {self.hidden}, padding "
                    "masked), mean over the tokens, linear; inputs input_ids and "
                    "attention_mask")
        if self.tagger:
            return f"TaggerRNN: embedding {self.embed}, {kind} {self.hidden}, linear per step"
        return f"IntentRNN: embedding {self.embed}, {kind} {self.hidden}, final state, linear"


RECIPES = {r.name: r for r in [
    TextRecipe("clinc_lstm", "LSTM", 64, 128, 1, False, "torchscript", 12),
    TextRecipe("clinc_gru", "GRU", 64, 128, 1, False, "torchscript", 12),
    TextRecipe("clinc_rnn", "RNN", 64, 128, 1, False, "torchscript", 15),
    TextRecipe("clinc_bilstm2", "LSTM", 64, 96, 2, True, "dynamo", 12),
    TextRecipe("clinc_transformer", "Transformer", 64, 128, 1, False, "torchscript", 15),
    TextRecipe("conll_lstm", "LSTM", 64, 128, 1, False, "torchscript", 8),
    TextRecipe("conll_bigru2", "GRU", 64, 64, 2, True, "dynamo", 8),
]}
TAG_LEN = 40


def clinc_vocab(data_root: str) -> Vocab:
    """The shared CLINC vocabulary, built from the train split on first use."""
    if CLINC_VOCAB.exists():
        return Vocab.load(CLINC_VOCAB)
    texts, intents = read_clinc(data_root, "train")
    vocab = Vocab.build(texts, sorted(set(intents)), MAX_LEN)
    vocab.save(CLINC_VOCAB)
    return vocab


def train(model: nn.Module, r: TextRecipe, x: np.ndarray, y: np.ndarray, seed: int) -> float:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=r.lr)
    steps = math.ceil(len(xt) / r.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, total_steps=r.epochs * steps,
                                                pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)  # taggers: -1 on padding
    start = time.perf_counter()
    for epoch in range(1, r.epochs + 1):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for i in range(steps):
            idx = perm[i * r.batch_size:(i + 1) * r.batch_size]
            logits = model(*model_inputs(model, xt[idx]))
            k = logits.shape[-1]
            loss = loss_fn(logits.reshape(-1, k), yt[idx].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # recurrent gradients spike
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            lab = yt[idx]
            correct += int(((logits.argmax(-1) == lab) & (lab >= 0)).sum())
            seen += int((lab >= 0).sum())
        print(f"epoch {epoch:3d}/{r.epochs}  loss {total / len(xt):.4f}  "
              f"train_acc {correct / seen:.4f}  elapsed {time.perf_counter() - start:.0f}s",
              flush=True)
    return time.perf_counter() - start


def model_inputs(model: nn.Module, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """What ``model`` takes for token ids: the ids, and for a transformer the attention
    mask (1 on tokens, 0 on padding id 0)."""
    if isinstance(model, IntentTransformer):
        return ids, (ids != 0).long()
    return (ids,)


def feeds(sess, x: np.ndarray) -> dict[str, np.ndarray]:
    """ONNX Runtime's feed for token ids ``x``: ``input``, or ``input_ids`` and
    ``attention_mask``."""
    names = [i.name for i in sess.get_inputs()]
    if names == ["input"]:
        return {"input": x}
    return {"input_ids": x, "attention_mask": (x != 0).astype(np.int64)}


def export_two_inputs(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    """TorchScript export of a transformer with its two inputs, the batch dynamic."""
    warnings.filterwarnings("ignore", "You are using the legacy", DeprecationWarning)
    names = ["input_ids", "attention_mask"]
    torch.onnx.export(model, model_inputs(model, example), str(out), dynamo=False,
                      opset_version=17, input_names=names, output_names=["logits"],
                      dynamic_axes={**{n: {0: "N"} for n in names}, "logits": {0: "N"}},
                      do_constant_folding=True)


def opset_of(path: Path) -> int:
    import onnx

    model = onnx.load(str(path))
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def ort_top1(sess, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    """Top-1 over samples, or over labelled tokens (label >= 0) for a tagger."""
    correct = seen = 0
    for i in range(0, len(x), batch):
        (logits,) = sess.run(["logits"], feeds(sess, x[i:i + batch]))
        lab = y[i:i + batch]
        correct += int(((logits.argmax(-1) == lab) & (lab >= 0)).sum())
        seen += int((lab >= 0).sum())
    return correct / seen


def conll_vocab(data_root: str) -> TagVocab:
    """The shared CoNLL-2000 vocabulary, built from the train split on first use."""
    if CONLL_VOCAB.exists():
        return TagVocab.load(CONLL_VOCAB)
    vocab = TagVocab.build(read_conll2000(data_root, "train"), TAG_LEN)
    vocab.save(CONLL_VOCAB)
    return vocab


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.train_text",
                                description=__doc__.split("\n")[0])
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-zoo", action="store_true", help="do not touch models/zoo.json")
    args = p.parse_args(argv)
    r = RECIPES[args.name]
    if args.epochs:
        r = TextRecipe(**{**r.__dict__, "epochs": args.epochs})
    set_determinism(args.seed, args.threads)
    if r.tagger:
        vocab = conll_vocab(args.data_root)
        x, y = conll_arrays(args.data_root, "train", vocab)
        x_test, y_test = conll_arrays(args.data_root, "test", vocab)
        classes, net = vocab.tags, TaggerRNN
    else:
        vocab = clinc_vocab(args.data_root)
        x, y = clinc_arrays(args.data_root, "train", vocab)
        x_test, y_test = clinc_arrays(args.data_root, "test", vocab)
        classes, net = vocab.classes, IntentRNN
    if r.cell == "Transformer":
        model = IntentTransformer(vocab.size, len(classes), r.embed, 4, r.hidden, MAX_LEN)
    else:
        model = net(vocab.size, len(classes), r.cell, r.embed, r.hidden, r.layers,
                    r.bidirectional)
    seconds = train(model, r, x, y, args.seed)
    out = MODELS_DIR / f"{r.name}.onnx"
    if isinstance(model, IntentTransformer):
        export_two_inputs(model.eval(), torch.from_numpy(x[:4]), out)
    else:
        export_onnx(model.eval(), torch.from_numpy(x[:4]), out, r.exporter)
    sess = ort_session(out, args.threads)
    with torch.no_grad():
        ref = model(*model_inputs(model, torch.from_numpy(x_test[:64]))).numpy()
    (got,) = sess.run(["logits"], feeds(sess, x_test[:64]))
    if not float(np.abs(ref - got).max()) < CHECK_TOLERANCE:
        raise RuntimeError("ONNX Runtime differs from torch")
    top1 = ort_top1(sess, x_test, y_test)
    print(f"{r.name}: test top-1 {top1:.4f} ({count_params(model)} parameters, {seconds:.0f}s)")
    if not args.no_zoo:
        update_zoo({
            "name": r.name, "file": out.name,
            **({"dataset": "CoNLL-2000 part-of-speech, 12 universal tags (token accuracy, "
                           "padding excluded)",
                "data": "../shared/data/nltk_data", "split": "test",
                "text": {"vocab": CONLL_VOCAB.name, "dataset": "conll2000", "max_len": TAG_LEN}}
               if r.tagger else
               {"dataset": "CLINC150, 150 in-scope intents (out-of-scope excluded)",
                "data": "../shared/data/clinc-oos", "split": "test",
                "text": {"vocab": CLINC_VOCAB.name, "dataset": "clinc150",
                         "max_len": MAX_LEN,
                         **({"attention_mask": True} if r.cell == "Transformer" else {})}}),
            "architecture": r.architecture, "exporter": r.exporter,
            "opset": opset_of(out),
            "params": count_params(model), "top1": round(top1, 4), "epochs": r.epochs,
            "train_seconds": round(seconds, 1), "seed": args.seed, "torch": torch.__version__,
            "command": f"python -m models.train_text {r.name} --epochs {r.epochs} "
                       f"--seed {args.seed} --threads {args.threads} --data-root "
                       f"{args.data_root}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
