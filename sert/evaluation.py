"""Evaluation: greedy decoding on the test split and the paper's metrics.

  accuracy           extracted answer equals the gold answer
  format_rate        (Fmt) the output is parseable in the trained format (an answer clause with a
                     candidate after it, or a bare label), is not imitative and not severely
                     repetitive (word bigram rep-2 above ``severe_rep2``)
  length             (Len) mean whitespace words of the whole output (the paper's unit, sert.text)
  repetition         (Rep) mean word-unigram repetition rate, 1 - unique words / words
  reasoning_rate     share of outputs that are reasoning paths by the pattern filter's rule
                     (not imitative, no option listing, not a direct response; sert.text)
  length_tokens      mean generated model tokens (extra; None for text without token ids)
  repetition_tokens  mean token-unigram repetition rate (extra; None likewise)
All rates are fractions in [0, 1].

Each of the five compared metrics has a 95% interval beside it, ``<metric>_ci: [low, high]``
(``sert.stats``), rounded like the metrics:
  accuracy_ci, format_rate_ci, reasoning_rate_ci   Wilson score interval of the rate (k of n questions)
  length_ci, repetition_ci                         percentile bootstrap over the questions of the mean
                                                   (10,000 resamples, fixed seed: the same every run)
An interval is null where there is nothing to estimate it from: a bootstrap over fewer than two
questions; constant values (every output one word) give [x, x]. The token extras have none.
"""

from __future__ import annotations

from typing import Protocol

from sert.config import EvalConfig
from sert.stats import bootstrap_mean, rounded, wilson
from sert.tasks import Example, Task
from sert.text import has_reasoning, is_imitative, rep_n, split_answer_clause, words


class Output(Protocol):
    """A generated text (``sert.samplers.Generation``), or a teacher's text with ``token_ids`` None."""

    text: str
    token_ids: list[int] | None


def is_formatted(text: str, task: Task, severe_rep2: float) -> bool:
    _, after = split_answer_clause(text)
    parseable = (after is not None and bool(task.candidates(after))) or task.candidates(text.strip(" .\n")) == [
        text.strip(" .\n")
    ]
    return parseable and not is_imitative(text) and rep_n(words(text), 2) <= severe_rep2


def score(task: Task, examples: list[Example], generations: list[Output], cfg: EvalConfig):
    """Per-question prediction records and the aggregate metrics."""
    records = []
    for ex, gen in zip(examples, generations):
        prediction = task.extract_answer(gen.text)
        tokens = gen.token_ids
        records.append({
            "id": ex.id,
            "output": gen.text,
            "prediction": prediction,
            "answer": ex.answer,
            "correct": task.is_correct(prediction, ex),
            "formatted": is_formatted(gen.text, task, cfg.severe_rep2),
            "reasoning": has_reasoning(gen.text, cfg.min_reasoning_words),
            "n_words": len(words(gen.text)),
            "repetition": rep_n(words(gen.text), 1),
            "n_tokens": None if tokens is None else len(tokens),
            "repetition_tokens": None if tokens is None else rep_n(tokens, 1),
        })
    n = len(records)
    if n == 0:
        return records, {"n": 0}

    def mean(key):
        values = [r[key] for r in records]
        return None if None in values else sum(float(v) for v in values) / n

    def rate_ci(key):
        return rounded(wilson(sum(bool(r[key]) for r in records), n))

    def mean_ci(key):
        return rounded(bootstrap_mean([float(r[key]) for r in records]))

    metrics = {
        "accuracy": mean("correct"),
        "accuracy_ci": rate_ci("correct"),
        "format_rate": mean("formatted"),
        "format_rate_ci": rate_ci("formatted"),
        "length": mean("n_words"),
        "length_ci": mean_ci("n_words"),
        "repetition": mean("repetition"),
        "repetition_ci": mean_ci("repetition"),
        "reasoning_rate": mean("reasoning"),
        "reasoning_rate_ci": rate_ci("reasoning"),
        "length_tokens": mean("n_tokens"),
        "repetition_tokens": mean("repetition_tokens"),
        "n": n,
        "n_correct": sum(r["correct"] for r in records),
    }
    return records, {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
