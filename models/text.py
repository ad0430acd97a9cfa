"""Text into the token ids the zoo's text models take, and the ``.npz`` the command line reads.

    python -m models.text clinc150 --split test --out clinc150_test.npz
                          [--vocab models/clinc150_vocab.json] [--data-root ../shared/data]
    python -m models.text clinc150 --split test --out clinc150_mask_test.npz --attention-mask
    python -m models.text conll2000 --split test --out conll2000_test.npz
                          [--vocab models/conll2000_vocab.json]

The taggers' data (CoNLL-2000, universal tags, labels [N, max_len] with -1 on padding) is
described in :mod:`models.tags`; the rest of this docstring is about the intent classifiers.

The tokeniser lower-cases and keeps runs of letters and digits (with an apostrophe suffix:
"what's", "don't"). Ids: 0 pads, 1 is a word outside the vocabulary, then the vocabulary in
its file's order. A sentence becomes ``max_len`` ids, its first ``max_len`` tokens padded on
the left, so that a recurrent layer's final state follows the last real token. The
vocabulary file holds everything needed to encode new text: the tokeniser's pattern, the
padding, ``max_len``, the words and the class names. No torch here: tests use it too.

The ``.npz`` holds ``x`` [N, max_len] int64, ``y`` [N] int64 and ``class_names``: exactly
what ``onnxdecomp decompose|eval|link --data FILE.npz`` takes. With ``--attention-mask``
(for ``clinc_transformer``, whose inputs are named as transformer exporters name them) the
ids are ``input_ids`` beside ``attention_mask``, 1 on tokens and 0 on padding.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PATTERN = r"[a-z0-9]+(?:'[a-z]+)?"
PAD, UNK = 0, 1
MODELS_DIR = Path(__file__).resolve().parent
CLINC_VOCAB = MODELS_DIR / "clinc150_vocab.json"
CONLL_VOCAB = MODELS_DIR / "conll2000_vocab.json"


def tokenize(text: str, pattern: str = PATTERN) -> list[str]:
    return re.findall(pattern, text.lower())


@dataclass(frozen=True)
class Vocab:
    words: tuple[str, ...]
    classes: tuple[str, ...]
    max_len: int
    pattern: str = PATTERN

    @classmethod
    def build(cls, texts: list[str], classes: list[str], max_len: int,
              min_count: int = 2) -> Vocab:
        """Words seen at least ``min_count`` times, most frequent first (ties by spelling)."""
        counts = Counter(t for text in texts for t in tokenize(text))
        words = sorted((w for w, c in counts.items() if c >= min_count),
                       key=lambda w: (-counts[w], w))
        return cls(tuple(words), tuple(classes), max_len)

    @property
    def size(self) -> int:
        return len(self.words) + 2

    def encode(self, texts: list[str]) -> np.ndarray:
        """[N, max_len] int64 ids, left-padded with PAD."""
        index = {w: i + 2 for i, w in enumerate(self.words)}
        out = np.full((len(texts), self.max_len), PAD, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [index.get(t, UNK) for t in tokenize(text, self.pattern)][:self.max_len]
            if ids:
                out[row, self.max_len - len(ids):] = ids
        return out

    def labels(self, names: list[str]) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[n] for n in names], dtype=np.int64)

    def save(self, path: Path) -> None:
        _write_atomic(path, (json.dumps({
            "tokenizer": {"lowercase": True, "pattern": self.pattern},
            "padding": "left", "max_len": self.max_len, "pad": PAD, "unk": UNK,
            "classes": list(self.classes), "words": list(self.words)}, indent=0) + "\n"
        ).encode())

    @classmethod
    def load(cls, path: Path) -> Vocab:
        d = json.loads(Path(path).read_text())
        return cls(tuple(d["words"]), tuple(d["classes"]), int(d["max_len"]),
                   d["tokenizer"]["pattern"])


def read_clinc(data_root: str | Path, split: str) -> tuple[list[str], list[str]]:
    """(texts, intents) of a CLINC150 split, the 150 in-scope intents only."""
    path = Path(data_root) / "clinc-oos" / "data_full.json"
    rows = json.loads(path.read_text())[split]
    return [r[0] for r in rows], [r[1] for r in rows]


def clinc_arrays(data_root: str | Path, split: str,
                 vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    texts, intents = read_clinc(data_root, split)
    return vocab.encode(texts), vocab.labels(intents)


def write_npz(path: Path, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...],
              attention_mask: bool = False) -> None:
    """``x``, ``y`` and ``class_names``; with ``attention_mask`` the ids are ``input_ids``
    beside an ``attention_mask`` (1 on tokens, 0 on padding), one array per input of a
    two-input model."""
    import io

    inputs = {"input_ids": x, "attention_mask": (x != 0).astype(np.int64)} if \
        attention_mask else {"x": x}
    buf = io.BytesIO()
    np.savez_compressed(buf, **inputs, y=y, class_names=np.array(classes))
    _write_atomic(path, buf.getvalue())


def _write_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.text", description=__doc__.split("\n")[0])
    p.add_argument("dataset", choices=["clinc150", "conll2000"])
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", required=True, help="the .npz to write")
    p.add_argument("--vocab", default=None, help="default: the dataset's in models/")
    p.add_argument("--attention-mask", action="store_true",
                   help="write input_ids and attention_mask (a two-input model's) for x")
    p.add_argument("--data-root", default=str(MODELS_DIR.parent.parent / "shared" / "data"))
    args = p.parse_args(argv)
    if args.dataset == "conll2000":
        from models.tags import TagVocab, conll_arrays

        if args.split == "val":
            p.error("CoNLL-2000 has a train and a test split only")
        tag_vocab = TagVocab.load(Path(args.vocab or CONLL_VOCAB))
        x, y = conll_arrays(args.data_root, args.split, tag_vocab)
        classes = tag_vocab.tags
    else:
        vocab = Vocab.load(Path(args.vocab or CLINC_VOCAB))
        x, y = clinc_arrays(args.data_root, args.split, vocab)
        classes = vocab.classes
    write_npz(Path(args.out), x, y, classes, args.attention_mask)
    what = "input_ids and attention_mask" if args.attention_mask else "x"
    print(f"wrote {args.out}: {what} {x.shape} int64, y {y.shape}, {len(classes)} classes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
