"""PaddlePaddle models exported by paddle2onnx: the test fixtures of
``tests/test_paddle2onnx_exports.py``.

Random weights (BatchNorm statistics drawn at random), seeded; each model is small. Made in a
separate environment (Paddle is not a dependency of the project or its tests):

    python -m venv /tmp/pdenv && /tmp/pdenv/bin/pip install paddlepaddle paddle2onnx onnx packaging
    cd tests/data/paddle2onnx && /tmp/pdenv/bin/python export.py [NAME ...]

Written with PaddlePaddle 3.3.1 and paddle2onnx 2.1.0, opset 17. (Its SimpleRNN export is
refused by onnx's checker, "nodes in a graph must be topologically sorted": not kept.)
"""

import sys

import paddle
from paddle import nn

F = nn.functional


class CNN(nn.Layer):
    """Conv, BatchNorm, a strided conv, a residual add, Hardswish, flatten, two dense."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2D(3, 8, 3, padding=1), nn.BatchNorm2D(8)
        self.c2 = nn.Conv2D(8, 16, 3, padding=1, stride=2)
        self.c3, self.b3 = nn.Conv2D(16, 16, 3, padding=1), nn.BatchNorm2D(16)
        self.fc, self.head = nn.Linear(16 * 4 * 4, 32), nn.Linear(32, 5)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        y = F.relu(self.c2(x))
        y = F.hardswish(y + self.b3(self.c3(y)))
        return self.head(F.relu(self.fc(paddle.flatten(y, 1))))


class Recurrent(nn.Layer):
    """A recurrent layer over [N, T, F]: its last step (or every step) into a dense head."""

    def __init__(self, kind, direction="forward", sequences=False):
        super().__init__()
        self.sequences = sequences
        self.rnn = getattr(nn, kind)(6, 12, direction=direction)
        self.head = nn.Linear(12 * (1 if direction == "forward" else 2), 5)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out) if self.sequences else self.head(out[:, -1])


class EmbedGRU(nn.Layer):
    """Token ids through an embedding into a GRU; its final state into the head."""

    def __init__(self):
        super().__init__()
        self.embed, self.rnn, self.head = nn.Embedding(30, 8), nn.GRU(8, 12), nn.Linear(12, 5)

    def forward(self, x):
        _, h = self.rnn(self.embed(x))
        return self.head(h[-1])


MODELS = {
    "cnn": (CNN, [None, 3, 8, 8], "float32"),
    "lstm": (lambda: Recurrent("LSTM"), [None, 7, 6], "float32"),
    "gru": (lambda: Recurrent("GRU"), [None, 7, 6], "float32"),
    "bilstm": (lambda: Recurrent("LSTM", "bidirect"), [None, 7, 6], "float32"),
    "gru_seq": (lambda: Recurrent("GRU", sequences=True), [None, 7, 6], "float32"),
    "embed_gru": (EmbedGRU, [None, 9], "int64"),
}


def main() -> None:
    for name in sys.argv[1:] or MODELS:
        paddle.seed(0)
        build, shape, dtype = MODELS[name]
        net = build()
        net.eval()
        for layer in net.sublayers():
            if isinstance(layer, nn.BatchNorm2D):
                layer._mean.set_value(paddle.uniform(layer._mean.shape, min=-0.5, max=0.5))
                layer._variance.set_value(paddle.uniform(layer._variance.shape, min=0.5,
                                                         max=2.0))
        spec = [paddle.static.InputSpec(shape=shape, dtype=dtype, name="x")]
        paddle.onnx.export(net, name, input_spec=spec, opset_version=17)
        print(name, "written")


if __name__ == "__main__":
    main()
