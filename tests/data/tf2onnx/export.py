"""Keras models exported by tf2onnx: the test fixtures of ``tests/test_tf2onnx_exports.py``.

Random weights (BatchNorm statistics drawn at random), seeded; each model is small. Made in a
separate environment (TensorFlow is not a dependency of the project or its tests):

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu tf2onnx
    cd tests/data/tf2onnx && /tmp/tfenv/bin/python export.py [NAME ...]

Written with TensorFlow 2.21.0 (Keras 3), tf2onnx 1.17.0, opset 17. tf2onnx fuses Keras 3's
LSTM into the ONNX LSTM op but writes its GRU and SimpleRNN, and an LSTM with hard-sigmoid
gates, as a Loop over the steps.
"""

import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
from tensorflow import keras  # noqa: E402

L = keras.layers


def cnn():
    i = keras.Input((16, 16, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(i)))
    x = L.Conv2D(16, 3, padding="same", activation="relu")(L.MaxPooling2D()(x))
    x = L.Dense(16, activation="relu")(L.Flatten()(L.MaxPooling2D()(x)))
    return keras.Model(i, L.Dense(5)(x))


def resnet():
    i = keras.Input((16, 16, 3))
    x = L.Conv2D(16, 3, padding="same", activation="relu")(i)
    for _ in range(2):
        y = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(y))
        x = L.ReLU()(L.Add()([x, y]))
    y = L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Add()([y, L.Conv2D(32, 1, strides=2)(x)])
    return keras.Model(i, L.Dense(5, activation="softmax")(L.GlobalAveragePooling2D()(x)))


def mobile():
    i = keras.Input((16, 16, 3))
    x = L.ReLU(6.0)(L.Conv2D(16, 3, padding="same")(i))
    y = L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(x)))
    x = L.Add()([x, L.Conv2D(16, 1)(y)])
    x = L.SeparableConv2D(24, 3, padding="same", activation="swish")(x)
    se = L.GlobalAveragePooling2D(keepdims=True)(x)
    se = L.Conv2D(24, 1, activation="sigmoid")(L.Conv2D(6, 1, activation="relu")(se))
    x = L.Multiply()([x, se])
    x = L.Concatenate()([x, L.Conv2D(8, 1)(x)])
    return keras.Model(i, L.Dense(5)(L.Dropout(0.2)(L.GlobalMaxPooling2D()(x))))


def recurrent(kind, bidirectional=False, sequences=False, **options):
    def build():
        i = keras.Input((7, 6))
        layer = getattr(L, kind)(12, return_sequences=sequences, **options)
        x = L.Bidirectional(layer)(i) if bidirectional else layer(i)
        return keras.Model(i, L.Dense(5)(x))
    return build


def embed_lstm():
    i = keras.Input((9,), dtype="int32")
    return keras.Model(i, L.Dense(5)(L.LSTM(12)(L.Embedding(30, 8)(i))))


def stacked():
    i = keras.Input((7, 6))
    x = L.SimpleRNN(10)(L.GRU(12, return_sequences=True)(i))
    return keras.Model(i, L.Dense(5)(x))


def masked():
    i = keras.Input((9,), dtype="int32")
    return keras.Model(i, L.Dense(5)(L.GRU(12)(L.Embedding(30, 8, mask_zero=True)(i))))


def conv_gru():
    i = keras.Input((20, 4))
    x = L.MaxPooling1D()(L.Conv1D(8, 3, activation="relu")(i))
    return keras.Model(i, L.Dense(5)(L.GRU(12)(x)))


def unrolled(kind):
    def build():
        i = keras.Input((5, 6))
        return keras.Model(i, L.Dense(5)(getattr(L, kind)(12, unroll=True)(i)))
    return build


def lstm_state():
    i = keras.Input((7, 6))
    _, h, c = L.LSTM(12, return_state=True)(i)
    return keras.Model(i, L.Dense(5)(L.Concatenate()([h, c])))


def lstm_bigru():
    i = keras.Input((7, 6))
    x = L.Bidirectional(L.GRU(8))(L.LSTM(12, return_sequences=True)(i))
    return keras.Model(i, L.Dense(5)(x))


def time_distributed():
    i = keras.Input((7, 6))
    x = L.TimeDistributed(L.Dense(8, activation="relu"))(L.GRU(12, return_sequences=True)(i))
    return keras.Model(i, L.Dense(5)(L.Flatten()(x)))


def layers_cnn():
    i = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3)(L.ZeroPadding2D(1)(i))
    x = L.AveragePooling2D(2)(L.LeakyReLU(0.1)(x))
    x = L.PReLU(shared_axes=[1, 2])(L.Conv2D(16, 3, padding="same")(x))
    y = L.ZeroPadding2D(1)(L.Cropping2D(1)(L.UpSampling2D()(x)))
    y = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(y)
    y = L.Conv2DTranspose(8, 2, strides=2)(L.MaxPooling2D()(y))
    x = L.Concatenate()([L.Conv2D(8, 1)(x), y])
    return keras.Model(i, L.Dense(5)(L.GlobalAveragePooling2D()(x)))


def mlp():
    i = keras.Input((20,))
    x = L.Dense(32)(L.Rescaling(1 / 4.0, offset=-0.5)(i))
    x = L.Activation("swish")(L.BatchNormalization()(x))
    x = L.Dense(16, activation="elu")(L.Dropout(0.3)(x))
    return keras.Model(i, L.Dense(5, activation="softmax")(x))


def attention():
    i = keras.Input((9,), dtype="int32")
    x = L.Embedding(30, 16)(i)
    a = L.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
    x = L.LayerNormalization()(L.Add()([x, a]))
    f = L.Dense(16)(L.Dense(32, activation="relu")(x))
    x = L.LayerNormalization()(L.Add()([x, f]))
    return keras.Model(i, L.Dense(5)(L.GlobalAveragePooling1D()(x)))


MODELS = {
    "mlp": mlp, "attention": attention, "layers_cnn": layers_cnn,
    "rnn_unrolled": unrolled("SimpleRNN"), "gru_unrolled": unrolled("GRU"),
    "lstm_unrolled": unrolled("LSTM"), "lstm_state": lstm_state, "lstm_bigru": lstm_bigru,
    "hardsig_lstm": recurrent("LSTM", recurrent_activation="hard_sigmoid"),
    "time_distributed": time_distributed,
    "cnn": cnn, "resnet": resnet, "mobile": mobile,
    "lstm": recurrent("LSTM"), "gru": recurrent("GRU"), "simplernn": recurrent("SimpleRNN"),
    "relu_rnn": recurrent("SimpleRNN", activation="relu"),
    "gru_v1": recurrent("GRU", reset_after=False), "bilstm": recurrent("LSTM", True),
    "lstm_seq": recurrent("LSTM", sequences=True),
    "bigru_seq": recurrent("GRU", True, True), "embed_lstm": embed_lstm,
    "stacked": stacked, "masked": masked, "conv_gru": conv_gru,
}


def main() -> None:
    for name in sys.argv[1:] or MODELS:
        tf.random.set_seed(0)
        np.random.seed(0)
        model = MODELS[name]()
        rng = np.random.default_rng(0)
        for layer in model.layers:
            if isinstance(layer, L.BatchNormalization):
                w = layer.get_weights()
                w[2] = rng.uniform(-0.5, 0.5, w[2].shape)
                w[3] = rng.uniform(0.5, 2.0, w[3].shape)
                layer.set_weights(w)
        spec = [tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype,
                              name="input")]
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
        with open(f"{name}.onnx", "wb") as f:
            f.write(proto.SerializeToString())
        print(name, len(proto.graph.node), "nodes")


if __name__ == "__main__":
    main()
