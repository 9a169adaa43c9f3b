"""The paper's four filters, in order, then one path per question.

pattern -> length -> repetition -> perplexity, then the surviving sample with the lowest rep-2
for each question. The paper does not check the sampled answer against the gold answer, and
neither does this by default; ``require_correct`` adds STaR's check (an ``after_answer`` step
between perplexity and selection, in the funnel only when it is on).

What is filtered is what is trained: length, rep-2 and perplexity are measured on the kept
reasoning (the text before the sample's first "the answer is", ``sert.text.kept_reasoning``).
Length and rep-2 count whitespace words by default (``unit: words``, the paper's Len/Rep unit;
its "25 tokens" is read in that unit); perplexity is the sampler's over the tokens covering the
kept reasoning (``Sample.kept_perplexity``, computed where the per-token log-probabilities are).
``unit: model`` measures the whole sample instead: the sampler's token count, token rep-2 and perplexity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from sert.config import UNITS, FilterConfig
from sert.errors import ParamsError
from sert.samplers import Sample
from sert.text import kept_reasoning, pattern_failure, rep_n, words

FUNNEL_KEYS = ("samples", "after_pattern", "after_length", "after_repetition", "after_perplexity", "after_answer",
               "selected")
PATTERN_KEYS = ("pattern_imitative", "pattern_option_listing", "pattern_direct_response")
"""Extra metrics/filter.json keys: samples the pattern filter dropped, per reason (then
``eos_branch_samples`` / ``eos_branch_passed``: samples of end-token branches, and those that passed)."""


def measure(sample: Sample, unit: str) -> tuple[int, float]:
    """(length, rep-2) of what is trained from ``sample``, in ``unit``."""
    if unit == "model":
        return sample.n_tokens, sample.rep2
    if unit != "words":
        raise ParamsError(f"filter.unit: {unit!r}; expected one of {', '.join(UNITS)}")
    kept = words(kept_reasoning(sample.text))
    return len(kept), rep_n(kept, 2)


def measured_perplexity(sample: Sample, unit: str) -> float | None:
    """The perplexity the filter compares: the kept reasoning's (``unit: words``) or the whole
    sample's (``unit: model``)."""
    return sample.perplexity if unit == "model" else sample.kept_perplexity


def verdict(sample: Sample, cfg: FilterConfig) -> str:
    """The first filter that drops ``sample`` (``pattern:<reason>``, ``length``, ``repetition``,
    ``perplexity``) or ``pass``; ``filter_samples`` applies exactly this, so the verdicts of a
    sample file explain its funnel (and give real examples of what each filter removes)."""
    why = pattern_failure(sample.text, cfg.min_reasoning_words)
    if why is not None:
        return f"pattern:{why}"
    length, rep2 = measure(sample, cfg.unit)
    if length < cfg.min_length:
        return "length"
    if rep2 > cfg.max_rep2:
        return "repetition"
    # An empty sample (or kept part) has no perplexity (null in the records); it cannot be latent reasoning.
    ppl = measured_perplexity(sample, cfg.unit)
    if ppl is None or ppl < cfg.min_perplexity:
        return "perplexity"
    return "pass"


def filter_samples(
    samples: Iterable[Sample], cfg: FilterConfig, is_correct: Callable[[Sample], bool] | None = None,
) -> tuple[list[Sample], dict[str, int]]:
    """Apply the filters; return the selected sample per question (input order) and the funnel.
    ``is_correct`` scores a sample's answer against its question's gold answer (needed only with
    ``cfg.require_correct``)."""
    samples = list(samples)
    verdicts = Counter(verdict(s, cfg) for s in samples)
    funnel = {"samples": len(samples)}
    left = len(samples)
    for key, step in (("after_pattern", None), ("after_length", "length"), ("after_repetition", "repetition"),
                      ("after_perplexity", "perplexity")):
        left -= sum(n for v, n in verdicts.items() if v.startswith("pattern:")) if step is None else verdicts[step]
        funnel[key] = left
    stage = [s for s in samples if verdict(s, cfg) == "pass"]
    if cfg.require_correct:
        if is_correct is None:
            raise ValueError("filter.require_correct needs an is_correct function")
        stage = [s for s in stage if is_correct(s)]
        funnel["after_answer"] = len(stage)
    best: dict[str, tuple[Sample, float]] = {}
    for s in stage:  # ties keep the earliest sample, so the result is deterministic
        rep2 = measure(s, cfg.unit)[1]
        if s.id not in best or rep2 < best[s.id][1]:
            best[s.id] = (s, rep2)
    funnel["selected"] = len(best)
    for key in PATTERN_KEYS:
        funnel[key] = verdicts["pattern:" + key.removeprefix("pattern_")]
    # Branches that opened with an end token, decoded on after it (the paper's "<|endoftext|>"
    # branch): how many samples they gave and how many of those survived every filter.
    funnel["eos_branch_samples"] = sum(s.eos_branch for s in samples)
    funnel["eos_branch_passed"] = sum(s.eos_branch for s in samples if verdict(s, cfg) == "pass")
    return [s for s, _ in best.values()], funnel


STEPS = ("pattern", "length", "repetition", "perplexity")
"""The filters in order, as ``verdict`` names them (pattern verdicts carry a reason after a colon)."""


def filter_examples(samples: Sequence[Sample], cfg: FilterConfig, per_step: int = 10) -> dict[str, dict[str, list]]:
    """Real examples of what each filter does: per step, up to ``per_step`` samples it removed and
    as many that reached it and passed it, each with its verdict.

    Picks are spread evenly over the sample file (no randomness, so the output is reproducible),
    one per question where the candidates allow it, so the examples are not ten samples of one
    question."""
    verdicts = [verdict(s, cfg) for s in samples]
    rank = {step: i for i, step in enumerate(STEPS)}
    reached = [rank[v.split(":")[0]] if v != "pass" else len(STEPS) for v in verdicts]
    out = {}
    for i, step in enumerate(STEPS):
        removed = [j for j, r in enumerate(reached) if r == i]
        kept = [j for j, r in enumerate(reached) if r > i]
        out[step] = {"removed": [(samples[j], verdicts[j]) for j in spread(samples, removed, per_step)],
                     "kept": [(samples[j], verdicts[j]) for j in spread(samples, kept, per_step)]}
    return out


def spread(samples: Sequence[Sample], indices: list[int], n: int) -> list[int]:
    """Up to ``n`` of ``indices``, evenly spaced, preferring one per question."""
    first_of_question: dict[str, int] = {}
    for j in indices:
        first_of_question.setdefault(samples[j].id, j)
    pool = list(first_of_question.values()) if len(first_of_question) >= n else indices
    if len(pool) <= n:
        return pool
    return [pool[k * len(pool) // n] for k in range(n)]


def render_filter_examples(examples: dict[str, dict[str, list]], cfg: FilterConfig, questions: dict[str, str],
                           max_chars: int = 500) -> str:
    """metrics/filter_examples.md: the samples of ``filter_examples`` as readable markdown."""
    lines = ["# What each filter removed and kept", "",
             f"Real samples from `data/samples.jsonl` (thresholds: pattern with {cfg.min_reasoning_words} reasoning "
             f"words, length >= {cfg.min_length} {cfg.unit}, rep-2 <= {cfg.max_rep2:g}, perplexity >= "
             f"{cfg.min_perplexity:g}). "
             + ("Length, rep-2 and perplexity are measured on the kept reasoning (before the first \"the answer is\")."
                if cfg.unit == "words" else "Length, rep-2 and perplexity are the whole sample's, in model tokens.")
             + " \u23ce marks a line break.", ""]
    for step, groups in examples.items():
        for group in ("removed", "kept"):
            picked = groups[group]
            lines += [f"## {step}: {group} ({len(picked)} shown)", ""]
            if not picked:
                lines += ["(none)", ""]
            for sample, why in picked:
                length, rep2 = measure(sample, cfg.unit)
                ppl = measured_perplexity(sample, cfg.unit)
                ppl = "-" if ppl is None else f"{ppl:.2f}"
                text = sample.text if len(sample.text) <= max_chars else sample.text[:max_chars] + " [...]"
                lines += [f"- **{sample.id}** branch {sample.branch} {sample.branch_token!r}, verdict `{why}`, "
                          f"{length} {cfg.unit}, rep-2 {rep2:.2f}, perplexity {ppl}",
                          f"  - question: {_one_line(questions.get(sample.id, ''))}",
                          f"  - sample: {_one_line(text)}"]
            lines.append("")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", " \u23ce ").replace("|", "\\|")


def format_funnel(funnel: dict[str, int]) -> str:
    return " -> ".join(f"{k} {funnel[k]}" for k in FUNNEL_KEYS if k in funnel)
