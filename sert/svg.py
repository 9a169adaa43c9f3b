"""What the project's figures share: the names shown for variants and metrics, the colours, and the
SVG document frame. The report (sert/report.py), the seed sweep (sert/sweep.py) and the studies under
``results/`` draw with these.

The figures are hand-written SVG: a handful of bars, dots and lines need no plotting library
(matplotlib is not a dependency), and their bytes depend on the numbers alone, so a git-tracked
figure changes only when they do. matplotlib's SVG would need ``metadata={"Date": None}`` and a
fixed ``svg.hashsalt`` (it embeds a date and random clip ids by default) and would still change
with the installed matplotlib version.
"""

from __future__ import annotations

LABELS = {"base": "Base (zero-shot)", "finetune": "Finetune", "sert": "SERT", "rd": "RD", "sert_rd": "SERT+RD",
          "accuracy": "Acc", "reasoning_rate": "Reasoning", "format_rate": "Fmt", "length": "Len",
          "repetition": "Rep"}
"""Names shown in tables and figures for the variants and the metrics of metrics/eval/<variant>.json;
anything else is shown under its own name."""

COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d")
"""Series colours, in order (a colour-blind-safe palette: Tableau 10's first seven)."""


def label(key: str) -> str:
    """The shown name of a variant or metric key."""
    return LABELS.get(key, key)


def color(i: int) -> str:
    """The ``i``-th series colour (cycling)."""
    return COLORS[i % len(COLORS)]


def document(width: int, height: int, body: list[str]) -> str:
    """A whole SVG file: a white ``width`` x ``height`` canvas (sans-serif, 12 px) holding ``body``'s
    elements, one per line."""
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
            f'<rect width="{width}" height="{height}" fill="white"/>']
    return "\n".join([*head, *body, "</svg>"]) + "\n"

