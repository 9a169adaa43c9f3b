"""The report's pure parts: the Table II-style markdown (each metric with its 95% interval where
the metrics file holds one), the paired comparisons, the paper's own differences against noise,
the comparison figure (SVG with error bars, drawn with sert/svg.py's names, colours and frame) and
the DVC plot data (filter funnel, per-variant metrics, confusion pairs).
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from sert.compare import ALPHA, PAIRS, paired_reading, paper_comparisons, paper_reading
from sert.judge import CRITERIA, CRITERIA_LABELS
from sert.published import Published
from sert.stats import N_RESAMPLES
from sert.svg import COLORS, color, document, label

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

DOMINANT_SHARE = 0.8
"""A variant whose most frequent prediction covers at least this share of the test questions is named
in the report as mostly repeating one answer: its accuracy is then mostly that answer's share of the
gold labels, not a reading of the questions."""

def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def published_cell(p: Published | None) -> str:
    """'Acc / Fmt / Len / Rep' as the paper prints it (Acc in percent), '-' where it reports nothing."""
    if p is None:
        return "-"
    if p.format_rate is None and p.length is None:
        return f"{p.accuracy:.2f}"
    return " / ".join([f"{p.accuracy:.2f}", _fmt(p.format_rate, 2), _fmt(p.length, 2), _fmt(p.repetition, 2)])


def interval(m: dict, key: str) -> tuple[float, float] | None:
    """The metric's ``<key>_ci`` as (low, high), or None where the file has none (an interval needs
    at least two questions)."""
    ci = m.get(f"{key}_ci")
    return (float(ci[0]), float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None


def _cell(m: dict, key: str, digits: int) -> str:
    """'0.546 [0.509, 0.583]': the value with its interval when there is one."""
    value, ci = m.get(key), interval(m, key)
    if value is None or ci is None:
        return _fmt(value, digits)
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _row(name: str, m: dict, paper: str | None) -> str:
    cells = [name, _cell(m, "accuracy", 3), _cell(m, "format_rate", 3), _cell(m, "length", 1),
             _cell(m, "repetition", 3), _cell(m, "reasoning_rate", 3), str(m.get("n", "-")),
             _fmt(m.get("length_tokens"), 1), _fmt(m.get("repetition_tokens"), 3)]
    return "| " + " | ".join(cells) + " |" + (f" {paper} |" if paper is not None else "")


def render_markdown(task: str, model: str, evals: dict[str, dict], funnel: dict, teacher: dict,
                    published: dict[str, Published] | None, figure: str | None = None,
                    teacher_eval: dict | None = None, teacher_published: Published | None = None,
                    comparisons: dict[str, dict] | None = None, published_n: int | None = None,
                    predictions: dict[str, list[dict]] | None = None, judge: dict | None = None) -> str:
    """metrics/report.md: results table (with the paper's column when a published run or the
    paper's teacher row matches), the paired comparisons, the paper's differences against noise,
    the figure, the filter funnel and the teacher.

    ``teacher_eval`` is metrics/eval/teacher.json: the teacher's test outputs scored like the
    variants (a row of the table), or ``{"available": false, "reason"}``; a variant's metrics of that
    shape (not trained, ``sert.variants.write_not_trained``) get a row saying so. ``comparisons`` is
    metrics/compare.json (``sert.compare.compare_variants``); ``published_n`` the paper's test
    questions for this task (``sert.published.published_test_size``); ``predictions`` the per-question
    records of data/predictions/<variant>.jsonl, for the answers each variant gives and the
    majority-class baseline; ``judge`` metrics/judge.json, for the judge's section."""
    paper = bool(published or teacher_published)
    lines = [
        f"# SERT results: task `{task}`, student `{model}`",
        "",
        "Greedy decoding on the test split. Acc, Fmt and Reasoning are fractions; Len is mean",
        "whitespace words per output and Rep the word-unigram repetition rate, the paper's units",
        "(Len/Rep tokens: the same in student tokens; see `sert/evaluation.py`).",
        "In brackets, 95% intervals: Wilson for Acc, Fmt and Reasoning, a percentile bootstrap over the",
        f"test questions ({N_RESAMPLES:,} resamples) for Len and Rep.",
        "",
        "| method | Acc | Fmt | Len | Rep | Reasoning | n | Len tokens | Rep tokens |"
        + (" Paper (Acc % / Fmt / Len / Rep) |" if paper else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if paper else ""),
    ]
    absent = {}
    for variant, m in evals.items():
        paper_cell = published_cell((published or {}).get(variant)) if paper else None
        if m.get("available", True):
            lines.append(_row(label(variant), m, paper_cell))
        else:  # not trained: a row that says so, beside the paper's cell
            absent.setdefault(m.get("reason"), []).append(label(variant))
            lines.append("| " + " | ".join([label(variant), "not trained"] + ["-"] * 7) + " |"
                         + (f" {paper_cell} |" if paper_cell is not None else ""))
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
    if teacher_published and teacher_eval and teacher_eval.get("available"):
        lines.append("The teacher's paper cell is Table II's text-davinci-002 Zero-shot-CoT row.")
    if teacher_note:
        lines.append(teacher_note)
    for reason, names in absent.items():
        lines.append(f"Not trained: {', '.join(names)}: {reason}.")
    if predictions:
        lines += [""] + answers_markdown(predictions)
    if comparisons:
        lines += [""] + comparisons_markdown(comparisons, evals)
    if published and published_n:
        lines += [""] + paper_markdown(published, published_n)
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
    supply = ""
    if "covered" in teacher:  # the oracle's scarcity and errors (teacher.coverage, teacher.error_rate)
        supply = (f" It covered {teacher['covered']} of {teacher.get('questions')} questions, {teacher.get('wrong')} "
                  "of its rationales wrong by design.")
    if "kept" in teacher:
        supply += f" {teacher['kept']} rationales were kept for distillation."
    summary = (f"Backend `{teacher.get('backend')}`: {teacher.get('n_correct')}/{teacher.get('n')} correct "
               f"(accuracy {teacher.get('accuracy', 0):.3f}) on the training questions.{supply}")
    if teacher.get("backend") == "none":
        summary = "None (`teacher.backend: none`): no rationales, so the distillation variants are not trained."
    lines += ["", "## Teacher", "", summary, ""]
    if judge is not None:
        lines += judge_markdown(judge) + [""]
    return "\n".join(lines)


def judge_markdown(metrics: dict) -> list[str]:
    """The report's judge section from metrics/judge.json: per variant the outputs scored, the mean
    of each criterion and the overall mean with its 95% bootstrap interval, and what failed."""
    lines = ["## LLM judge", ""]
    if not metrics.get("enabled"):
        return lines + ["Off (`judge.enabled: false`): no output was sent to a judge."]
    lines += [f"Judge `{metrics.get('model')}`, scores 0-10 per output (`data/judge.jsonl`); Overall is the mean "
              "of the four criteria, in brackets its 95% percentile bootstrap interval over the scored outputs.",
              "", "| method | scored / judged | " + " | ".join(CRITERIA_LABELS.values()) + " | Overall |",
              "|---|---|" + "---|" * (len(CRITERIA) + 1)]
    for variant, m in metrics.get("variants", {}).items():
        if m.get("scored"):
            ci = m.get("overall_ci")
            overall = f"{m['overall']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            cells = [f"{m['mean'][c]:.2f}" for c in CRITERIA] + [overall]
        else:
            cells = ["-"] * (len(CRITERIA) + 1)
        lines.append(f"| {label(variant)} | {m.get('scored', 0)} / {m.get('n', 0)} | " + " | ".join(cells) + " |")
    if metrics.get("failed"):
        reasons = "; ".join(f"{n} x {r}" for r, n in metrics.get("failure_reasons", {}).items())
        lines += ["", f"Not scored: {metrics['failed']} of {metrics.get('n')} outputs ({reasons}); a failure is "
                      "left out of the means, never counted as a zero."]
    return lines


def majority_class(records: list[dict]) -> tuple[str, int, int]:
    """The test split's most frequent gold answer, its count and the number of questions (ties go to
    the answer that sorts first, so the result does not depend on the records' order)."""
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r["answer"])] = counts.get(str(r["answer"]), 0) + 1
    if not counts:
        raise ValueError("majority_class: no test questions")
    answer = min(counts, key=lambda a: (-counts[a], a))
    return answer, counts[answer], len(records)


def answer_counts(records: list[dict]) -> dict[str, int]:
    """How often each answer was predicted, most frequent first (ties by answer); questions without an
    extractable answer count under 'none', listed last."""
    counts: dict[str, int] = {}
    for r in records:
        if r.get("prediction") is not None:
            counts[str(r["prediction"])] = counts.get(str(r["prediction"]), 0) + 1
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    missing = sum(r.get("prediction") is None for r in records)
    return {**ordered, **({"none": missing} if missing else {})}


def dominant_answer(records: list[dict], share: float = DOMINANT_SHARE) -> tuple[str, float] | None:
    """(answer, its share of the test questions) when one predicted answer covers at least ``share`` of
    them, else None."""
    counts = {a: c for a, c in answer_counts(records).items() if a != "none"}
    if not counts or not records:
        return None
    answer = next(iter(counts))
    fraction = counts[answer] / len(records)
    return (answer, fraction) if fraction >= share else None


def answers_markdown(predictions: dict[str, list[dict]]) -> list[str]:
    """The "Answers given" section: the majority-class baseline and each variant's answer distribution,
    so that no accuracy is read without them."""
    first = next(iter(predictions.values()))
    answer, count, n = majority_class(first)
    gold = answer_counts([{"prediction": r["answer"]} for r in first])
    labels = list(gold) + sorted({a for records in predictions.values() for a in answer_counts(records)
                                  if a not in gold and a != "none"}) + ["none"]
    lines = ["## Answers given", "",
             f"Gold answers of the {n} test questions: " + ", ".join(f"{a} {c}" for a, c in gold.items())
             + f". Always answering \"{answer}\" scores {count / n:.3f} (the majority class). Per variant, how",
             "often each answer was predicted ('none': no extractable answer), and the share of its most",
             "frequent one:", "",
             "| method | " + " | ".join(labels) + " | most frequent |",
             "|---|" + "---|" * (len(labels) + 1)]
    repeaters = []
    for variant, records in predictions.items():
        counts = answer_counts(records)
        top = next((a for a in counts if a != "none"), None)
        share = "-" if top is None else f"{top} {counts[top] / len(records):.3f}"
        lines.append(f"| {label(variant)} | " + " | ".join(str(counts.get(a, 0)) for a in labels) + f" | {share} |")
        dominant = dominant_answer(records)
        if dominant:
            repeaters.append(f"{label(variant)} (\"{dominant[0]}\" on {dominant[1]:.0%})")
    lines.append("")
    if repeaters:
        lines.append(f"Mostly one answer (at least {DOMINANT_SHARE:.0%} of the questions): {', '.join(repeaters)}; "
                     "such a variant's accuracy is close to that answer's share of the gold labels.")
    else:
        lines.append(f"No variant gives one answer on {DOMINANT_SHARE:.0%} of the questions or more.")
    return lines


def _signed(value: float, digits: int) -> str:
    """'+0.090', '-0.010', and a plain '0.000' for zero (no sign on a value that rounds to 0)."""
    return f"{0.0:.{digits}f}" if round(value, digits) == 0 else f"{value:+.{digits}f}"


def _diff_cell(difference: float, ci: list | None, digits: int) -> str:
    cell = _signed(difference, digits)
    return cell if ci is None else f"{cell} [{_signed(ci[0], digits)}, {_signed(ci[1], digits)}]"


def _p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def comparisons_markdown(comparisons: dict[str, dict], evals: dict[str, dict]) -> list[str]:
    """The "Paired comparisons" section: one row per entry of metrics/compare.json, in its order."""
    n = next(iter(comparisons.values()))["n"]
    lines = ["## Paired comparisons", "",
             f"Accuracy of a minus accuracy of b on the same {n} test questions: the 95% interval is a paired",
             f"percentile bootstrap over the questions ({N_RESAMPLES:,} resamples), p McNemar's exact test (a",
             "two-sided binomial test on the questions exactly one of the two got right). A difference reads",
             f"as beyond noise only when its interval excludes 0 and p < {ALPHA:g}. Also in `metrics/compare.json`.",
             "",
             "| a vs b | Acc a | Acc b | a - b [95% CI] | McNemar exact p | a right, b wrong | a wrong, b right "
             "| reading |",
             "|---|---|---|---|---|---|---|---|"]
    for c in comparisons.values():
        acc_a, acc_b = (evals.get(v, {}).get(c["metric"]) for v in (c["a"], c["b"]))
        lines.append(f"| {label(c['a'])} vs {label(c['b'])} | {_fmt(acc_a, 3)} | {_fmt(acc_b, 3)} | "
                     f"{_diff_cell(c['difference'], c['ci'], 3)} | {_p(c['p_value'])} | {c['a_only']} | "
                     f"{c['b_only']} | {paired_reading(c)} |")
    return lines


def paper_markdown(published: dict[str, Published], n: int) -> list[str]:
    """The paper's own differences (same pairs) with an unpaired interval at its test size."""
    rows = paper_comparisons(published, n)
    lines = ["## The paper's differences against noise", "",
             f"Table II's accuracies for the same pairs, each measured once on the paper's {n:,} test questions.",
             "The paper publishes no per-question outputs, so an interval for an unpaired difference of two",
             "proportions (Newcombe's hybrid score interval, from the counts nearest to the printed",
             "percentages) is the most its numbers allow; a paired test on the same questions, like ours above,",
             "would be tighter. In percentage points:",
             "",
             "| a vs b | paper a (%) | paper b (%) | a - b [95% CI] | reading |",
             "|---|---|---|---|---|"]
    for c in rows:
        lines.append(f"| {label(c['a'])} vs {label(c['b'])} | {c['accuracy_a']:.2f} | {c['accuracy_b']:.2f} | "
                     f"{_diff_cell(c['difference'], c['ci'], 2)} | {paper_reading(c)} |")
    missing = [(a, b) for a, b in PAIRS if a not in published or b not in published]
    if missing:
        why = " (it has no zero-shot student row)" if any("base" in pair for pair in missing) else ""
        lines += ["", f"Not in Table II: {', '.join(f'{label(a)} vs {label(b)}' for a, b in missing)}{why}."]
    return lines


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

    Rates share a 0-1 axis; Len (words) is scaled to the longest (ours, an interval's end or the
    paper's). Where the metrics hold a 95% interval it is an error bar on the bar; where a published
    run matches, the paper's value is a black tick on the variant's row.
    """
    variants = list(evals)
    name_w, panel_w, bar_w, row_h, top = 120, 170, 110, 22, 46
    width = name_w + panel_w * len(METRICS) + 10
    notes = []
    if any(interval(evals[v], key) for v in variants for key, _ in METRICS):
        notes.append("Error bars: 95% intervals (Wilson for Acc, Fmt and Reasoning; bootstrap over questions "
                     "for Len and Rep).")
    if published:
        notes.append("Black ticks: the paper's Table II value (Acc converted from percent).")
    bottom = top + row_h * len(variants)
    height = bottom + 14 + 18 * len(notes)

    def paper_value(variant: str, key: str) -> float | None:
        p = (published or {}).get(variant)
        if p is None:
            return None
        value = getattr(p, key, None)  # reasoning_rate is not in Table II
        return value / 100 if key == "accuracy" and value is not None else value

    def x_of(x0: float, value: float, scale: float) -> float:
        return x0 + max(0.0, min(1.0, value / scale)) * bar_w

    out: list[str] = []
    for i, variant in enumerate(variants):
        y = top + i * row_h
        out.append(f'<text x="{name_w - 8}" y="{y + 15}" text-anchor="end">{escape(label(variant))}</text>')
    for j, (key, title) in enumerate(METRICS):
        x0 = name_w + j * panel_w
        scale = 1.0
        if key == "length":
            values = [evals[v][key] for v in variants] + [paper_value(v, key) or 0 for v in variants]
            values += [ci[1] for v in variants if (ci := interval(evals[v], key))]
            scale = max(values) or 1.0
        axis = "words, max " + f"{scale:.0f}" if key == "length" else "0 - 1"
        out.append(f'<text x="{x0}" y="18" font-weight="bold">{title}</text>')
        out.append(f'<text x="{x0}" y="34" fill="#666" font-size="10">{axis}</text>')
        out.append(f'<line x1="{x0}" y1="{top - 4}" x2="{x0}" y2="{bottom}" stroke="#999"/>')
        for i, variant in enumerate(variants):
            y = top + i * row_h
            value = float(evals[variant][key])
            w = x_of(x0, value, scale) - x0
            out.append(f'<rect x="{x0}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                       f'fill="{color(i)}"/>')
            text_x = x0 + w
            ci = interval(evals[variant], key)
            if ci is not None:  # a line from low to high with end caps, across the bar's middle
                lo, hi, mid = x_of(x0, ci[0], scale), x_of(x0, ci[1], scale), y + row_h / 2
                out.append(f'<path d="M{lo:.1f} {mid:.0f}H{hi:.1f}M{lo:.1f} {mid - 4:.0f}V{mid + 4:.0f}'
                           f'M{hi:.1f} {mid - 4:.0f}V{mid + 4:.0f}" stroke="#222" fill="none"/>')
                text_x = max(text_x, hi)
            text = f"{value:.1f}" if key == "length" else f"{value:.2f}"
            out.append(f'<text x="{text_x + 4:.1f}" y="{y + 15}" font-size="11">{text}</text>')
            paper = paper_value(variant, key)
            if paper is not None:
                px = x_of(x0, paper, scale)
                out.append(f'<line x1="{px:.1f}" y1="{y + 1}" x2="{px:.1f}" y2="{y + row_h - 1}" '
                           'stroke="black" stroke-width="2"/>')
    for k, note in enumerate(notes):
        out.append(f'<text x="{name_w}" y="{bottom + 26 + 18 * k}" font-size="11">{escape(note)}</text>')
    return document(width, height, out)


# --- Iterated SERT (sert.rounds > 1): the per-round table and curve, under the figure -------------

CURVES = (("accuracy", "Acc", COLORS[0]), ("reasoning_rate", "Reasoning", COLORS[1]))
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
    the same reason as the comparison figure: deterministic bytes, no plotting dependency)."""
    left, top, plot_w, plot_h = 50, 30, 360, 160
    width, height = left + plot_w + 120, top + plot_h + 40
    n = len(rows)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, v)))

    out = [f'<text x="{left}" y="18" font-weight="bold">Iterated SERT: test metrics per round</text>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>']
    for tick in (0.0, 0.5, 1.0):
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10">{tick:.1f}</text>')
    for i, r in enumerate(rows):
        out.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="10">'
                   f'{r["round"]}</text>')
    out.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="11">round</text>')
    for j, (key, name, stroke) in enumerate(CURVES):
        points = " ".join(f"{x(i):.1f},{y(float(r[key])):.1f}" for i, r in enumerate(rows))
        out.append(f'<polyline points="{points}" fill="none" stroke="{stroke}" stroke-width="2"/>')
        for i, r in enumerate(rows):
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(float(r[key])):.1f}" r="3" fill="{stroke}"/>')
        out.append(f'<text x="{left + plot_w + 12}" y="{top + 14 + 18 * j}" fill="{stroke}">{escape(name)}</text>')
    return document(width, height, out)


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
