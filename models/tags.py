"""Part-of-speech data for the zoo's taggers: CoNLL-2000 with the 12 universal tags.

CoNLL-2000 (``nltk_data/corpora/conll2000.zip``: WSJ text, one ``word PTB-tag chunk`` line a
token, a blank line between sentences; 8,936 train and 2,012 test sentences) is read
straight from the zip, and its Penn Treebank tags are mapped to the universal tagset of
Petrov et al. (``nltk_data/taggers/universal_tagset.zip``, ``en-ptb.map``). No nltk needed.

Tokens are lower-cased and every digit becomes ``0``. Ids: 0 pads, 1 is a word outside the
vocabulary (words seen twice in the train split). A sentence becomes rows of ``max_len`` ids
padded on the right, a sentence longer than ``max_len`` split into consecutive rows; the
labels ``y`` [N, max_len] hold the tag index of each token and -1 on padding, which every
metric ignores. Raw text is split into tokens by ``PATTERN`` (words, numbers, clitics such as
"n't" and "'s", punctuation), close to the treebank's own tokenisation.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.text import _write_atomic

PAD, UNK, IGNORE = 0, 1, -1
PATTERN = r"n't|'[a-z]+|[a-z]+(?=n't)|[a-z0-9]+(?:[.,][0-9]+)*|[^\sa-z0-9]"
UNIVERSAL_TAGS = (".", "ADJ", "ADP", "ADV", "CONJ", "DET", "NOUN", "NUM", "PRON", "PRT",
                  "VERB", "X")


def _member(data_root: str | Path, archive: str, name: str) -> str:
    with zipfile.ZipFile(Path(data_root) / "nltk_data" / archive) as z:
        return z.read(name).decode("utf-8")


def universal_map(data_root: str | Path) -> dict[str, str]:
    """Penn Treebank tag -> universal tag."""
    text = _member(data_root, "taggers/universal_tagset.zip", "universal_tagset/en-ptb.map")
    return dict(line.split("\t") for line in text.splitlines() if line.strip())


def read_conll2000(data_root: str | Path, split: str) -> list[tuple[list[str], list[str]]]:
    """(words, universal tags) of every sentence of a split ("train" or "test")."""
    mapping = universal_map(data_root)
    text = _member(data_root, "corpora/conll2000.zip", f"conll2000/{split}.txt")
    sentences, words, tags = [], [], []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        words.append(parts[0])
        tags.append(mapping.get(parts[1], "X"))
    if words:
        sentences.append((words, tags))
    return sentences


def normalise(word: str) -> str:
    return re.sub(r"[0-9]", "0", word.lower())


def tokenize(text: str, pattern: str = PATTERN) -> list[str]:
    """Raw text into tokens like the treebank's."""
    return re.findall(pattern, text.lower())


@dataclass(frozen=True)
class TagVocab:
    words: tuple[str, ...]
    tags: tuple[str, ...]
    max_len: int

    @classmethod
    def build(cls, sentences: list[tuple[list[str], list[str]]], max_len: int,
              min_count: int = 2) -> TagVocab:
        """Words seen at least ``min_count`` times, most frequent first (ties by spelling)."""
        counts: dict[str, int] = {}
        for words, _ in sentences:
            for w in words:
                counts[normalise(w)] = counts.get(normalise(w), 0) + 1
        words = sorted((w for w, c in counts.items() if c >= min_count),
                       key=lambda w: (-counts[w], w))
        return cls(tuple(words), UNIVERSAL_TAGS, max_len)

    @property
    def size(self) -> int:
        return len(self.words) + 2

    def encode(self, sentences: list[list[str]],
               tags: list[list[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids [N, max_len] int64 right-padded, labels [N, max_len] int64, -1 on padding);
        a sentence longer than ``max_len`` fills several rows."""
        index = {w: i + 2 for i, w in enumerate(self.words)}
        tag_index = {t: i for i, t in enumerate(self.tags)}
        rows_x, rows_y = [], []
        for s, words in enumerate(sentences):
            ids = [index.get(normalise(w), UNK) for w in words]
            labels = [tag_index[t] for t in tags[s]] if tags is not None else [IGNORE] * len(ids)
            for start in range(0, max(len(ids), 1), self.max_len):
                x = np.full(self.max_len, PAD, dtype=np.int64)
                y = np.full(self.max_len, IGNORE, dtype=np.int64)
                part = ids[start:start + self.max_len]
                x[:len(part)] = part
                y[:len(part)] = labels[start:start + self.max_len]
                rows_x.append(x)
                rows_y.append(y)
        return np.stack(rows_x), np.stack(rows_y)

    def save(self, path: Path) -> None:
        _write_atomic(path, (json.dumps({
            "tokenizer": {"lowercase": True, "digits": "0", "pattern": PATTERN},
            "padding": "right", "max_len": self.max_len, "pad": PAD, "unk": UNK,
            "ignore_label": IGNORE, "classes": list(self.tags), "words": list(self.words)},
            indent=0) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> TagVocab:
        d = json.loads(Path(path).read_text())
        return cls(tuple(d["words"]), tuple(d["classes"]), int(d["max_len"]))


def conll_arrays(data_root: str | Path, split: str,
                 vocab: TagVocab) -> tuple[np.ndarray, np.ndarray]:
    sentences = read_conll2000(data_root, split)
    return vocab.encode([w for w, _ in sentences], [t for _, t in sentences])
