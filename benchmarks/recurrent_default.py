"""The recurrent zoo at default settings: `onnxdecomp decompose` with no option (1,000
training sentences, `--fidelity 0.99`, `--align auto`), all 150 modules linked back with
`link --mode parallel`, top-1 on the full CLINC150 test split against the parent's.

    python -m benchmarks.recurrent_default
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.link_models import WORK, modules_of, top1
from benchmarks.recurrent_reuse import DATA, RESULTS
from models.text import CLINC_VOCAB, Vocab, clinc_arrays, write_npz
from onnxdecomp import link
from onnxdecomp.decompose.manifest import read_manifest

MODELS = ["clinc_rnn", "clinc_lstm", "clinc_gru", "clinc_bilstm2"]


def main() -> None:
    vocab = Vocab.load(CLINC_VOCAB)
    WORK.mkdir(parents=True, exist_ok=True)
    train = WORK / "clinc150_train.npz"
    write_npz(train, *clinc_arrays(DATA, "train", vocab), vocab.classes)
    x, y = clinc_arrays(DATA, "test", vocab)
    rows = []
    for name in MODELS:
        model = f"models/{name}.onnx"
        if not Path(model).exists():
            continue
        folder = modules_of(model, str(train))
        manifest = read_manifest(folder / "manifest.json")
        mean_macs = sum(m["macs_fraction"] for m in manifest["modules"]) / len(
            manifest["modules"])
        linked = link([folder], mode="parallel", device="cpu")
        parent, got = top1(model, x, y), top1(linked.proto, x, y)
        row = {"model": name, "parent_top1": parent, "linked_top1": got,
               "loss_pp": round(100 * (parent - got), 2),
               "mean_macs": round(mean_macs, 4), "align": manifest["settings"].get("align"),
               "align_recurrent": manifest["settings"].get("align_recurrent"),
               "timing_seconds": manifest.get("timing_seconds")}
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = {"command": "python -m benchmarks.recurrent_default", "test_samples": int(len(y)),
           "rows": rows}
    (RESULTS / "recurrent_default.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
