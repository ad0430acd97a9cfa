"""A Keras CNN on Fashion-MNIST, exported by tf2onnx: a zoo model from another framework and
exporter (NHWC input of raw 0..255 pixels, Rescaling, BatchNorm, a residual add, a softmax
head), trained and exported in a separate environment (TensorFlow is not a dependency):

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu tf2onnx
    /tmp/tfenv/bin/python models/train_keras.py --data ../shared/data/fashion-mnist \\
        --out models/keras_fmnist.onnx --epochs 4 --seed 0

Its top-1 is then measured with ``onnxdecomp eval`` and recorded in ``models/zoo.json``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file as an array (``onnxdecomp.data.readers`` has one too, but importing the
    package needs its dependencies, which the TensorFlow environment does not have)."""
    raw = gzip.open(path).read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def build(keras):
    layers = keras.layers

    def cbr(x, c, stride=1):
        x = layers.Conv2D(c, 3, strides=stride, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    i = keras.Input((28, 28, 1))
    x = cbr(cbr(layers.Rescaling(1 / 255.0)(i), 16), 32, 2)
    y = layers.BatchNormalization()(layers.Conv2D(32, 3, padding="same", use_bias=False)(
        cbr(x, 32)))
    x = layers.ReLU()(layers.Add()([x, y]))
    x = cbr(x, 64, 2)
    x = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(i, layers.Dense(10, activation="softmax")(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fashion-mnist")
    ap.add_argument("--out", default="models/keras_fmnist.onnx")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import tensorflow as tf
    import tf2onnx
    from tensorflow import keras

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    root = Path(args.data)
    x = read_idx(root / "train-images-idx3-ubyte.gz")[..., None].astype(np.float32)
    y = read_idx(root / "train-labels-idx1-ubyte.gz").astype(np.int64)
    model = build(keras)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=2, shuffle=True)
    print(f"trained in {time.time() - start:.1f} s, tensorflow {tf.__version__}, "
          f"tf2onnx {tf2onnx.__version__}, {model.count_params()} parameters")
    spec = [tf.TensorSpec((None, 28, 28, 1), tf.float32, name="input")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    Path(args.out).write_bytes(proto.SerializeToString())
    print("wrote", args.out)


if __name__ == "__main__":
    main()
