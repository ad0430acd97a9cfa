"""onnxdecomp: cut ONNX classifiers into per-class modules and link them back together."""

from onnxdecomp.version import __version__

__all__ = ["__version__", "decompose", "link"]


def __getattr__(name: str):
    # Lazy so that `import onnxdecomp` stays cheap and never needs onnxruntime.
    if name == "decompose":
        from onnxdecomp.decompose import decompose

        return decompose
    if name == "link":
        from onnxdecomp.link import link

        return link
    raise AttributeError(name)
