"""Channel analysis and pruning: which channels are one unit, and how to remove units."""

from onnxdecomp.channels.analyse import analyse
from onnxdecomp.channels.graph import ChannelGraph, Consumer, add_activation
from onnxdecomp.channels.prune import PruneChannelsPass, plain_slice
from onnxdecomp.channels.rules import rule_for
from onnxdecomp.channels.weights import consumer_bias, consumer_weight, dense_bias, dense_weight

__all__ = [
    "ChannelGraph",
    "Consumer",
    "PruneChannelsPass",
    "add_activation",
    "analyse",
    "consumer_bias",
    "consumer_weight",
    "dense_bias",
    "dense_weight",
    "plain_slice",
    "rule_for",
]
