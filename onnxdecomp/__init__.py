"""onnxdecomp: cut ONNX classifiers into per-class modules and link them back together."""

__version__ = "0.1.0"

__all__ = ["__version__", "decompose"]


def __getattr__(name: str):
    # Lazy so that `import onnxdecomp` stays cheap and never needs onnxruntime.
    if name == "decompose":
        from onnxdecomp.decompose import decompose

        return decompose
    raise AttributeError(name)
