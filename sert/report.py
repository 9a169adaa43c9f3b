"""The report's pure parts: the Table II-style markdown, the comparison figure (SVG) and the
DVC plot data (filter funnel, per-variant metrics, confusion pairs).

The figure is hand-written SVG rather than matplotlib: it is a handful of bars, the output is
byte-for-byte deterministic (matplotlib's SVG embeds a date and random clip ids), so the
git-tracked `metrics/report.svg` only changes when the numbers do, and the project needs no
plotting dependency.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from sert.published import Published

LABELS = {"base": "Base (zero-shot)", "finetune": "Finetune", "sert": "SERT", "rd": "RD", "sert_rd": "SERT+RD"}
"""Report names of the evaluated variants; other variants are shown under their own name."""

METRICS = (("accuracy", "Acc"), ("format_rate", "Fmt"), ("reasoning_rate", "Reasoning"), ("length", "Len"),
           ("repetition", "Rep"))
"""Metrics compared in the figure and the plots: (key in metrics/eval/<variant>.json, column name)."""

FUNNEL_STEPS = (("samples", "sampled"), ("after_pattern", "pattern"), ("after_length", "length"),
                ("after_repetition", "repetition"), ("after_perplexity", "perplexity"),
                ("selected", "questions kept"))
"""metrics/filter.json keys in filter order, with the step names shown in the funnel plot."""

PATTERN_REASONS = {"pattern_imitative": "imitative", "pattern_option_listing": "option listing",
                   "pattern_direct_response": "direct response"}
"""metrics/filter.json keys counting the pattern filter's drops per reason."""

COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d")


def label(variant: str) -> str:
    return LABELS.get(variant, variant)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def published_cell(p: Published | None) -> str:
    """'Acc / Fmt / Len / Rep' as the paper prints it (Acc in percent), '-' where it reports nothing."""
    if p is None:
        return "-"
    if p.format_rate is None and p.length is None:
        return f"{p.accuracy:.2f}"
    return " / ".join([f"{p.accuracy:.2f}", _fmt(p.format_rate, 2), _fmt(p.length, 2), _fmt(p.repetition, 2)])


def _row(name: str, m: dict, paper: str | None) -> str:
    cells = [name, _fmt(m.get("accuracy"), 3), _fmt(m.get("format_rate"), 3), _fmt(m.get("length"), 1),
             _fmt(m.get("repetition"), 3), _fmt(m.get("reasoning_rate"), 3), str(m.get("n", "-")),
             _fmt(m.get("length_tokens"), 1), _fmt(m.get("repetition_tokens"), 3)]
    return "| " + " | ".join(cells) + " |" + (f" {paper} |" if paper is not None else "")


def render_markdown(task: str, model: str, evals: dict[str, dict], funnel: dict, teacher: dict,
                    published: dict[str, Published] | None, figure: str | None = None,
                    teacher_eval: dict | None = None, teacher_published: Published | None = None) -> str:
    """metrics/report.md: results table (with the paper's column when a published run or the
    paper's teacher row matches), the figure, the filter funnel and the teacher.

    ``teacher_eval`` is metrics/eval/teacher.json: the teacher's test outputs scored like the
    variants (a row of the table), or ``{"available": false, "reason"}``."""
    paper = bool(published or teacher_published)
    lines = [
        f"# SERT results: task `{task}`, student `{model}`",
        "",
        "Greedy decoding on the test split. Acc, Fmt and Reasoning are fractions; Len is mean",
        "whitespace words per output and Rep the word-unigram repetition rate, the paper's units",
        "(Len/Rep tokens: the same in student tokens; see `sert/evaluation.py`).",
        "",
        "| method | Acc | Fmt | Len | Rep | Reasoning | n | Len tokens | Rep tokens |"
        + (" Paper (Acc % / Fmt / Len / Rep) |" if paper else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if paper else ""),
    ]
    for variant, m in evals.items():
        lines.append(_row(label(variant), m, published_cell((published or {}).get(variant)) if paper else None))
    teacher_note = None
    if teacher_eval and teacher_eval.get("available"):
        name = f"Teacher (`{teacher_eval.get('backend')}`)"
        lines.append(_row(name, teacher_eval, published_cell(teacher_published) if paper else None))
        teacher_note = (f"Teacher row: the teacher's own outputs for {teacher_eval.get('n')} of "
                        f"{teacher_eval.get('test_questions')} test questions, scored by the same code.")
    elif teacher_eval:
        teacher_note = f"No teacher row: {teacher_eval.get('reason')}."
    lines.append("")
    if published:
        lines.append(f"Paper: SERT Table II, student `{model}` on `{task}` (Finetune: accuracy only; the paper "
                     "has no zero-shot student row).")
    else:
        lines.append(f"No published run for task `{task}` with student `{model}` (the paper reports "
                     "StrategyQA and CommonsenseQA with GPT-2 small / medium / large).")
    if teacher_published:
        lines.append("The teacher's paper cell is Table II's text-davinci-002 Zero-shot-CoT row.")
    if teacher_note:
        lines.append(teacher_note)
    if figure:
        lines += ["", f"![Variants compared: {', '.join(m for _, m in METRICS)}]({figure})"]
    lines += ["", "## Self-training data", "",
              "| samples | after pattern | after length | after repetition | after perplexity | questions kept |",
              "|---|---|---|---|---|---|",
              "| " + " | ".join(str(funnel.get(k, "")) for k, _ in FUNNEL_STEPS) + " |"]
    if any(k in funnel for k in PATTERN_REASONS):
        lines += ["", "Pattern filter drops: " + ", ".join(
            f"{name} {funnel.get(k, 0)}" for k, name in PATTERN_REASONS.items()) + "."]
    if funnel.get("eos_branch_samples"):
        lines += ["", f"End-token branches (decoded on after the model's end token): {funnel['eos_branch_samples']} "
                      f"samples, {funnel.get('eos_branch_passed', 0)} passed every filter."]
    lines += ["", "## Teacher", "",
              f"Backend `{teacher.get('backend')}`: {teacher.get('n_correct')}/{teacher.get('n')} correct "
              f"(accuracy {teacher.get('accuracy', 0):.3f}) on the training questions.", ""]
    return "\n".join(lines)


# -- DVC plot data ---------------------------------------------------------------------------
def funnel_rows(funnel: dict) -> list[dict]:
    """Samples left after each filter; the step names are numbered so every plot keeps filter order."""
    return [{"step": f"{i} {name}", "count": int(funnel[key])}
            for i, (key, name) in enumerate(FUNNEL_STEPS, 1) if key in funnel]


def variant_rows(evals: dict[str, dict]) -> list[dict]:
    """One row per variant with the compared metrics (a bar per variant in each plot)."""
    return [{"variant": label(v), **{key: m[key] for key, _ in METRICS}} for v, m in evals.items()]


def confusion_rows(records: list[dict]) -> list[dict]:
    """Gold vs predicted answer per test question; a missing prediction is shown as 'none'."""
    return [{"actual": str(r["answer"]),
             "predicted": "none" if r.get("prediction") is None else str(r["prediction"])} for r in records]


# -- the figure ------------------------------------------------------------------------------
def render_svg(evals: dict[str, dict], published: dict[str, Published] | None = None) -> str:
    """Small multiples: one panel per metric, one bar per variant, the value printed beside it.

    Rates share a 0-1 axis; Len (words) is scaled to the longest (ours or the paper's). Where a published
    run matches, the paper's value is a black tick on the variant's row.
    """
    variants = list(evals)
    name_w, panel_w, bar_w, row_h, top = 120, 170, 110, 22, 46
    width = name_w + panel_w * len(METRICS) + 10
    height = top + row_h * len(variants) + (34 if published else 14)

    def paper_value(variant: str, key: str) -> float | None:
        p = (published or {}).get(variant)
        if p is None:
            return None
        value = getattr(p, key, None)  # reasoning_rate is not in Table II
        return value / 100 if key == "accuracy" and value is not None else value

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for i, variant in enumerate(variants):
        y = top + i * row_h
        out.append(f'<text x="{name_w - 8}" y="{y + 15}" text-anchor="end">{escape(label(variant))}</text>')
    for j, (key, title) in enumerate(METRICS):
        x0 = name_w + j * panel_w
        scale = 1.0
        if key == "length":
            values = [evals[v][key] for v in variants] + [paper_value(v, key) or 0 for v in variants]
            scale = max(values) or 1.0
        axis = "words, max " + f"{scale:.0f}" if key == "length" else "0 - 1"
        out.append(f'<text x="{x0}" y="18" font-weight="bold">{title}</text>')
        out.append(f'<text x="{x0}" y="34" fill="#666" font-size="10">{axis}</text>')
        out.append(f'<line x1="{x0}" y1="{top - 4}" x2="{x0}" y2="{top + row_h * len(variants)}" stroke="#999"/>')
        for i, variant in enumerate(variants):
            y = top + i * row_h
            value = float(evals[variant][key])
            w = max(0.0, min(1.0, value / scale)) * bar_w
            out.append(f'<rect x="{x0}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                       f'fill="{COLORS[i % len(COLORS)]}"/>')
            text = f"{value:.1f}" if key == "length" else f"{value:.2f}"
            out.append(f'<text x="{x0 + w + 4:.1f}" y="{y + 15}" font-size="11">{text}</text>')
            paper = paper_value(variant, key)
            if paper is not None:
                px = x0 + max(0.0, min(1.0, paper / scale)) * bar_w
                out.append(f'<line x1="{px:.1f}" y1="{y + 1}" x2="{px:.1f}" y2="{y + row_h - 1}" '
                           'stroke="black" stroke-width="2"/>')
    if published:
        out.append(f'<text x="{name_w}" y="{height - 10}" font-size="11">Black ticks: the paper\'s Table II '
                   'value (Acc converted from percent).</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
