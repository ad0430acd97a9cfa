"""The human-readable report of :class:`ModelStats` (``onnxdecomp inspect``)."""

from __future__ import annotations

from onnxdecomp.stats.model import ModelStats
from onnxdecomp.stats.shapes import fmt_shape


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def table(rows: list[list[str]], right: set[int], indent: str = "  ") -> list[str]:
    """Aligned columns; ``right`` holds the indices of right-aligned (numeric) columns."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[c]) if c in right else cell.ljust(widths[c])
            for c, cell in enumerate(row)
        ]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def format_stats(stats: ModelStats, top: int | None = None) -> str:
    """Human-readable report.

    ``top=None`` lists every counted layer in graph order; ``top=k`` lists the ``k`` layers
    with the most MACs (largest first) and sums up the rest in one line.
    """
    lines = [
        f"producer: {stats.producer or '(unknown)'}   opset: {stats.opset}   "
        f"IR version: {stats.ir_version}",
        "",
    ]
    for title, tensors in (("inputs", stats.inputs), ("outputs", stats.outputs)):
        lines.append(f"{title}:")
        if tensors:
            rows = [[t.name, t.dtype, fmt_shape(t.shape)] for t in tensors]
            lines += table(rows, right=set())
        else:
            lines.append("  (none)")
    total_nodes = sum(stats.op_counts.values())
    lines += ["", f"ops ({total_nodes} nodes, {len(stats.op_counts)} types):"]
    if stats.op_counts:
        lines += table([[op, str(n)] for op, n in stats.op_counts.items()], right={1})
    step_note = " (recurrent layers marked * are per time step)" if stats.macs_per_step else ""
    lines += [
        "",
        f"params:      {stats.params:,} ({_human(stats.params)})",
        f"MACs/sample: {stats.macs:,} ({_human(stats.macs)}){step_note}",
    ]
    if not stats.layers:
        return "\n".join(lines) + "\n"

    layers = list(stats.layers)
    if top is not None:
        layers = sorted(layers, key=lambda layer: -layer.macs)[: max(top, 0)]
    total = stats.macs or 1

    def pct(macs: int) -> str:
        return f"{100.0 * macs / total:.1f}%"

    header = ["layer", "op", "output shape", "params", "MACs", "%"]
    rows = [header] + [
        [
            layer.node,
            layer.op,
            fmt_shape(layer.output_shape),
            f"{layer.params:,}",
            f"{layer.macs:,}" + ("*" if layer.per_step else ""),
            pct(layer.macs),
        ]
        for layer in layers
    ]
    shown = {id(layer) for layer in layers}  # by identity: equal-looking layers are distinct
    rest = [layer for layer in stats.layers if id(layer) not in shown]
    if rest:
        rest_macs = sum(layer.macs for layer in rest)
        rows.append(
            [
                f"... {len(rest)} more",
                "",
                "",
                f"{sum(r.params for r in rest):,}",
                f"{rest_macs:,}",
                pct(rest_macs),
            ]
        )
    title = "layers" if top is None else f"top {len(layers)} layers by MACs"
    lines += ["", f"{title}:"] + table(rows, right={3, 4, 5})
    return "\n".join(lines) + "\n"
