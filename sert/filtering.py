"""The paper's four filters, in order, then one path per question.

pattern -> length -> repetition -> perplexity, then the surviving sample with the lowest rep-2
for each question. The paper does not check the sampled answer against the gold answer, and
neither does this by default; ``require_correct`` adds STaR's check (an ``after_answer`` step
between perplexity and selection, in the funnel only when it is on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sert.sampling import Sample
from sert.text import has_reasoning, is_imitative, lists_options

FUNNEL_KEYS = ("samples", "after_pattern", "after_length", "after_repetition", "after_perplexity", "after_answer",
               "selected")


@dataclass
class FilterConfig:
    """Filter thresholds (paper: 25 tokens, rep-2 0.20, perplexity 5)."""

    min_tokens: int = 25
    """Length: drop samples with fewer generated tokens."""
    max_rep2: float = 0.20
    """Repetition: drop samples whose bigram repetition rate is above this."""
    min_perplexity: float = 5.0
    """Perplexity: drop samples the model finds this predictable or more (not latent)."""
    min_reasoning_words: int = 3
    """Pattern: words needed before the answer clause to count as reasoning, not a direct response."""
    require_correct: bool = False
    """Keep a path only if its extracted answer is the gold one (STaR); the paper does not check."""


def pattern_ok(text: str, min_reasoning_words: int) -> bool:
    """No imitative generation, no direct response without reasoning, no option listing."""
    return not is_imitative(text) and has_reasoning(text, min_reasoning_words) and not lists_options(text)


def filter_samples(
    samples: Iterable[Sample], cfg: FilterConfig, is_correct: Callable[[Sample], bool] | None = None,
) -> tuple[list[Sample], dict[str, int]]:
    """Apply the filters; return the selected sample per question (input order) and the funnel.
    ``is_correct`` scores a sample's answer against its question's gold answer (needed only with
    ``cfg.require_correct``)."""
    stage = list(samples)
    funnel = {"samples": len(stage)}
    stage = [s for s in stage if pattern_ok(s.text, cfg.min_reasoning_words)]
    funnel["after_pattern"] = len(stage)
    stage = [s for s in stage if s.n_tokens >= cfg.min_tokens]
    funnel["after_length"] = len(stage)
    stage = [s for s in stage if s.rep2 <= cfg.max_rep2]
    funnel["after_repetition"] = len(stage)
    stage = [s for s in stage if s.perplexity >= cfg.min_perplexity]
    funnel["after_perplexity"] = len(stage)
    if cfg.require_correct:
        if is_correct is None:
            raise ValueError("filter.require_correct needs an is_correct function")
        stage = [s for s in stage if is_correct(s)]
        funnel["after_answer"] = len(stage)
    best: dict[str, Sample] = {}
    for s in stage:  # ties keep the earliest sample, so the result is deterministic
        if s.id not in best or s.rep2 < best[s.id].rep2:
            best[s.id] = s
    funnel["selected"] = len(best)
    return list(best.values()), funnel


def format_funnel(funnel: dict[str, int]) -> str:
    return " -> ".join(f"{k} {funnel[k]}" for k in FUNNEL_KEYS if k in funnel)
