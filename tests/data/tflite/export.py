"""Keras models converted to TFLite, then to ONNX by tf2onnx's ``--tflite`` path: the test
fixtures of ``tests/test_tflite_exports.py``.

The Keras models are those of ``../tf2onnx/export.py`` (random weights, BatchNorm statistics
drawn at random, seeded). Three forms of each:
- ``NAME``: float TFLite (NHWC; tf2onnx writes a Transpose around each convolution);
- ``NAME_q``: TFLite's default optimisation with a representative data set (int8 weights and
  activations, float input and output: QuantizeLinear, then int8 transposes and flattens
  between each QuantizeLinear and its DequantizeLinear);
- ``NAME_i8``: integer only (int8 input and output, ``TFLITE_BUILTINS_INT8``).
Made in a separate environment (TensorFlow is not a dependency of the project or its tests):

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu tf2onnx
    cd tests/data/tflite && /tmp/tfenv/bin/python export.py [NAME ...]

Written with TensorFlow 2.21.0, tf2onnx 1.17.0, opset 17. TFLite's converter does not take
Keras 3's recurrent layers without TensorFlow's own ops (``SELECT_TF_OPS``): none here.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tf2onnx"))
import export as keras_models  # noqa: E402

MODELS = {"cnn": ("", "_q", "_i8"), "mobile": ("", "_q"), "resnet": ("_q",),
          "layers_cnn": ("_q",), "mlp": ("_q", "_i8")}


def seeded(name: str):
    tf.random.set_seed(0)
    np.random.seed(0)
    model = keras_models.MODELS[name]()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras_models.L.BatchNormalization):
            w = layer.get_weights()
            w[2] = rng.uniform(-0.5, 0.5, w[2].shape)
            w[3] = rng.uniform(0.5, 2.0, w[3].shape)
            layer.set_weights(w)
    return model


def tflite(model, form: str) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if form:
        shape = (1, *model.inputs[0].shape[1:])

        def representative():
            for i in range(20):
                yield [np.random.default_rng(i).normal(size=shape).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
    if form == "_i8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def main() -> None:
    for name in sys.argv[1:] or MODELS:
        for form in MODELS[name]:
            tag = f"{name}{form}"
            Path(f"{tag}.tflite").write_bytes(tflite(seeded(name), form))
            subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite",
                            f"{tag}.tflite", "--output", f"{tag}.onnx", "--opset", "17"],
                           check=True, capture_output=True)
            os.remove(f"{tag}.tflite")
            print(tag)


if __name__ == "__main__":
    main()
