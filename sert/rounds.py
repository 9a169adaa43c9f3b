"""Iterated SERT (beyond the paper, STaR-style): repeat sample -> filter -> self-train from the
latest model for ``rounds`` rounds, and monitor every round on the test split.

Round 1 is the paper's pipeline (the sample, filter and ``train_sert`` stages). Rounds 2..N run
inside the ``train_sert`` stage; each samples the train questions from the previous round's model
with the *training* prompt (``prompts.train``: the self-trained model learned to reason after that
prompt, and answers the zero-shot prompt less reliably), filters with the same ``filter`` params
and self-trains the previous round's model on the newly selected paths. The intermediate models
go to ``models/sert_rounds/round-<k>``; the last round's model is ``models/sert``, so ``sert_rd``
and ``evaluate@sert`` use it. The ``rounds`` stage evaluates the intermediate models greedily
(monitoring only: no model is selected by its test accuracy) and takes the last round's numbers
from ``evaluate@sert``, so the default (1 round) costs nothing extra.

This module holds the config and the pure parts (table, curve, plot rows); the loop lives in
stages/train.py and the evaluation in stages/rounds.py.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from sert.config import SertConfig  # noqa: F401  (re-exported: the config moved to sert.config)

CURVES = (("accuracy", "Acc", "#4c78a8"), ("reasoning_rate", "Reasoning", "#f58518"))
"""Per-round metrics drawn in the curve: (key, name, colour)."""


def rounds_markdown(rows: list[dict]) -> str:
    """The report's per-round table (rows from metrics/rounds.json, in round order)."""
    lines = [
        "## Iterated SERT: per round",
        "",
        "Each round samples the train questions from the previous round's model (round 1: the base",
        "model), filters and self-trains that model. Greedy accuracy on the test split after each",
        "round (monitoring only; the last round is `models/sert`).",
        "",
        "| round | samples | selected | Acc | Reasoning |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['round']} | {r['samples']} | {r['selected']} | {r['accuracy']:.3f} | "
                     f"{r['reasoning_rate']:.3f} |")
    return "\n".join(lines) + "\n"


def rounds_svg(rows: list[dict]) -> str:
    """A line chart of accuracy and reasoning rate per round, on a 0-1 axis (hand-written SVG for
    the same reason as sert/report.py's figure: deterministic bytes, no plotting dependency)."""
    left, top, plot_w, plot_h = 50, 30, 360, 160
    width, height = left + plot_w + 120, top + plot_h + 40
    n = len(rows)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, v)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-weight="bold">Iterated SERT: test metrics per round</text>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>']
    for tick in (0.0, 0.5, 1.0):
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10">{tick:.1f}</text>')
    for i, r in enumerate(rows):
        out.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="10">'
                   f'{r["round"]}</text>')
    out.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="11">round</text>')
    for j, (key, name, color) in enumerate(CURVES):
        points = " ".join(f"{x(i):.1f},{y(float(r[key])):.1f}" for i, r in enumerate(rows))
        out.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, r in enumerate(rows):
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(float(r[key])):.1f}" r="3" fill="{color}"/>')
        out.append(f'<text x="{left + plot_w + 12}" y="{top + 14 + 18 * j}" fill="{color}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def rows_from_metrics(metrics: dict) -> list[dict]:
    """metrics/rounds.json (``{"round_<k>": {...}}``) back to rows in round order."""
    return sorted(({"round": int(key.rsplit("_", 1)[1]), **values} for key, values in metrics.items()),
                  key=lambda r: r["round"])


def stack_svg(top: str, bottom: str) -> str:
    """One SVG holding two (``top`` above ``bottom``) as nested <svg> elements, so the report keeps a
    single figure file whether or not it has the per-round curve."""
    sizes = []
    for svg in (top, bottom):
        match = re.match(r'<svg [^>]*width="(\d+)" height="(\d+)"', svg)
        if match is None:
            raise ValueError("stack_svg: expected an <svg> with integer width and height first")
        sizes.append((int(match[1]), int(match[2])))
    width, height = max(w for w, _ in sizes), sizes[0][1] + sizes[1][1]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">\n<rect width="{width}" height="{height}" fill="white"/>\n'
            + top.replace("<svg ", '<svg x="0" y="0" ', 1)
            + bottom.replace("<svg ", f'<svg x="0" y="{sizes[0][1]}" ', 1) + "</svg>\n")
