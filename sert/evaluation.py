"""Evaluation: greedy decoding on the test split and the paper's metrics.

  accuracy        extracted answer equals the gold answer
  format_rate     (Fmt) the output is parseable in the trained format (an answer clause with a
                  candidate after it, or a bare label), is not imitative and not severely repetitive
  length          (Len) mean generated tokens
  repetition      (Rep) mean unigram repetition rate, 1 - unique tokens / tokens
  reasoning_rate  share of outputs with at least ``min_reasoning_words`` words before an answer clause
All rates are fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

from sert.sampling import Generation
from sert.tasks import Example, Task
from sert.text import has_reasoning, is_imitative, rep_n, split_answer_clause


@dataclass
class EvalConfig:
    """Greedy evaluation on the test split (the ``evaluate`` section of params)."""

    max_new_tokens: int = 64
    """Generated tokens per question."""
    batch_size: int = 64
    """Questions per batch."""
    min_reasoning_words: int = 3
    """Words before the answer clause for an output to count as reasoning."""
    severe_rep2: float = 0.5
    """Outputs with a bigram repetition rate above this fail the format check."""


def is_formatted(text: str, tokens: list[int], task: Task, severe_rep2: float) -> bool:
    _, after = split_answer_clause(text)
    parseable = (after is not None and bool(task.candidates(after))) or task.candidates(text.strip(" .\n")) == [
        text.strip(" .\n")
    ]
    return parseable and not is_imitative(text) and rep_n(tokens, 2) <= severe_rep2


def score(task: Task, examples: list[Example], generations: list[Generation], cfg: EvalConfig):
    """Per-question prediction records and the aggregate metrics."""
    records = []
    for ex, gen in zip(examples, generations):
        prediction = task.extract_answer(gen.text)
        records.append({
            "id": ex.id,
            "output": gen.text,
            "prediction": prediction,
            "answer": ex.answer,
            "correct": task.is_correct(prediction, ex),
            "formatted": is_formatted(gen.text, gen.token_ids, task, cfg.severe_rep2),
            "reasoning": has_reasoning(gen.text, cfg.min_reasoning_words),
            "n_tokens": len(gen.token_ids),
            "repetition": rep_n(gen.token_ids, 1),
        })
    n = len(records)
    if n == 0:
        return records, {"n": 0}
    mean = lambda key: sum(float(r[key]) for r in records) / n  # noqa: E731
    metrics = {
        "accuracy": mean("correct"),
        "format_rate": mean("formatted"),
        "length": mean("n_tokens"),
        "repetition": mean("repetition"),
        "reasoning_rate": mean("reasoning"),
        "n": n,
        "n_correct": sum(r["correct"] for r in records),
    }
    return records, {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
