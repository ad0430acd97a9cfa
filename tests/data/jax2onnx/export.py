"""Flax (NNX) models exported by jax2onnx: the test fixtures of
``tests/test_jax2onnx_exports.py``.

Random weights, seeded; each model is small. Made in a separate environment (JAX is not a
dependency of the project or its tests):

    python -m venv /tmp/jxenv && /tmp/jxenv/bin/pip install jax2onnx flax onnx
    cd tests/data/jax2onnx && /tmp/jxenv/bin/python export.py [NAME ...]

Written with jax 0.10.2, flax 0.12.8 and jax2onnx 0.17.1. Flax is channels-last: the
exporter wraps each conv in Transposes and flattens the channels-last map.
"""

import sys

import jax
import jax.numpy as jnp
from flax import nnx
from jax2onnx import to_onnx


class CNN(nnx.Module):
    """Conv, BatchNorm, a strided conv, a residual add of a conv, GELU, a channels-last
    flatten into two dense layers."""

    def __init__(self, rngs):
        self.c1 = nnx.Conv(3, 8, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(8, use_running_average=True, rngs=rngs)
        self.c2 = nnx.Conv(8, 16, (3, 3), strides=2, rngs=rngs)
        self.c3 = nnx.Conv(16, 16, (3, 3), rngs=rngs)
        self.fc, self.head = nnx.Linear(16 * 4 * 4, 32, rngs=rngs), nnx.Linear(32, 5, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn(self.c1(x)))
        y = nnx.relu(self.c2(x))
        y = nnx.gelu(y + self.c3(y))
        return self.head(nnx.relu(self.fc(y.reshape(y.shape[0], -1))))


class PooledCNN(nnx.Module):
    """Two convs, a max pool, a mean over the positions into the head (one input channel)."""

    def __init__(self, rngs):
        self.c1 = nnx.Conv(1, 8, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(8, 16, (3, 3), rngs=rngs)
        self.head = nnx.Linear(16, 5, rngs=rngs)

    def __call__(self, x):
        x = nnx.max_pool(nnx.relu(self.c1(x)), window_shape=(2, 2), strides=(2, 2))
        return self.head(jnp.mean(nnx.relu(self.c2(x)), axis=(1, 2)))


class MLP(nnx.Module):
    """Dense, LayerNorm, SiLU, dense, tanh, head."""

    def __init__(self, rngs):
        self.l1, self.ln = nnx.Linear(20, 32, rngs=rngs), nnx.LayerNorm(32, rngs=rngs)
        self.l2, self.head = nnx.Linear(32, 16, rngs=rngs), nnx.Linear(16, 5, rngs=rngs)

    def __call__(self, x):
        return self.head(nnx.tanh(self.l2(nnx.silu(self.ln(self.l1(x))))))


class ScanRecurrent(nnx.Module):
    """A recurrence written with ``jax.lax.scan`` (jax2onnx: a Loop carrying the sequence and
    the weights unchanged): a tanh RNN, or a GRU with its gates ordered (r, z, n), two
    biases and the reset applied after the recurrent product (flax's GRUCell)."""

    def __init__(self, rngs, gru=False):
        k = jax.random.split(jax.random.PRNGKey(1), 4)
        g = 3 if gru else 1
        self.gru = gru
        self.wi = nnx.Param(jax.random.normal(k[0], (6, 12 * g)) * 0.4)
        self.wh = nnx.Param(jax.random.normal(k[1], (12, 12 * g)) * 0.3)
        self.bi = nnx.Param(jax.random.normal(k[2], (12 * g,)) * 0.1)
        self.bh = nnx.Param(jax.random.normal(k[3], (12 * g,)) * 0.1)
        self.head = nnx.Linear(12, 5, rngs=rngs)

    def __call__(self, x):
        wi, wh, bi, bh = (p.value for p in (self.wi, self.wh, self.bi, self.bh))

        def step(h, xt):
            a, g = xt @ wi + bi, h @ wh + bh
            if not self.gru:
                h = jnp.tanh(a + g)
                return h, h
            r = jax.nn.sigmoid(a[:, :12] + g[:, :12])
            z = jax.nn.sigmoid(a[:, 12:24] + g[:, 12:24])
            h = (1 - z) * jnp.tanh(a[:, 24:] + r * g[:, 24:]) + z * h
            return h, h

        h, _ = jax.lax.scan(step, jnp.zeros((x.shape[0], 12), x.dtype), jnp.swapaxes(x, 0, 1))
        return self.head(h)


class ScanLSTM(nnx.Module):
    """An LSTM cell written with ``jax.lax.scan``: two carried states (h, c), gates ordered
    (i, f, o, g), one bias; or, with ``h0``, a tanh RNN from a learned initial state (a
    loop no op from zero reproduces: kept, pinned, its output's shape unknown)."""

    def __init__(self, rngs, h0=False):
        k = jax.random.split(jax.random.PRNGKey(2), 4)
        self.wi = nnx.Param(jax.random.normal(k[0], (6, 48)) * 0.4)
        self.wh = nnx.Param(jax.random.normal(k[1], (12, 48)) * 0.3)
        self.b = nnx.Param(jax.random.normal(k[2], (48,)) * 0.1)
        self.h0 = nnx.Param(jax.random.normal(k[3], (1, 12)) * 0.5) if h0 else None
        self.head = nnx.Linear(12, 5, rngs=rngs)

    def __call__(self, x):
        wi, wh, b = self.wi.value, self.wh.value, self.b.value
        if self.h0 is not None:
            def tanh_step(h, xt):
                h = jnp.tanh(xt @ wi[:, :12] + h @ wh[:, :12] + b[:12])
                return h, h

            start = jnp.broadcast_to(self.h0.value, (x.shape[0], 12))
            h, _ = jax.lax.scan(tanh_step, start, jnp.swapaxes(x, 0, 1))
            return self.head(h)

        def step(hc, xt):
            h, c = hc
            g = xt @ wi + h @ wh + b
            i, f, o = (jax.nn.sigmoid(g[:, k * 12:(k + 1) * 12]) for k in range(3))
            c = f * c + i * jnp.tanh(g[:, 36:])
            h = o * jnp.tanh(c)
            return (h, c), h

        zero = jnp.zeros((x.shape[0], 12), x.dtype)
        (h, _), _ = jax.lax.scan(step, (zero, zero), jnp.swapaxes(x, 0, 1))
        return self.head(h)


MODELS = {"cnn": (CNN, (8, 8, 3)), "cnn_pool": (PooledCNN, (12, 12, 1)), "mlp": (MLP, (20,)),
          "scan_rnn": (ScanRecurrent, (7, 6)),
          "scan_gru": (lambda rngs: ScanRecurrent(rngs, gru=True), (7, 6)),
          "scan_lstm": (ScanLSTM, (7, 6)),
          "scan_rnn_h0": (lambda rngs: ScanLSTM(rngs, h0=True), (7, 6))}


def main() -> None:
    for name in sys.argv[1:] or MODELS:
        build, shape = MODELS[name]
        to_onnx(build(nnx.Rngs(0)), [("B", *shape)], return_mode="file",
                output_path=f"{name}.onnx")
        print(name, "written")


if __name__ == "__main__":
    main()
