"""Text statistics and answer-clause handling shared by filtering, formats and evaluation.

Everything here is pure and cheap; it takes arbitrary unicode and never raises on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# "So the answer is", "Therefore, the answer is", "the answer is" (Fine-tune-CoT's prefixes).
ANSWER_PREFIX = re.compile(r"(?:(?:so|therefore|thus|hence),?\s+)?the\s+answer\s+is\b:?", re.IGNORECASE)
WORD = re.compile(r"\w+")
# The prompt's own structure appearing again inside a continuation (imitative generation).
IMITATION = re.compile(r"(?:^|\W)(?:Question|Q)\s*:|\n\s*(?:Answer|A)\s*:")
CHOICE_MARKER = re.compile(r"\(([A-E])\)")


def rep_n(tokens: Sequence, n: int = 2) -> float:
    """Share of repeated n-grams: ``1 - unique n-grams / total n-grams`` (0 when there are none)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def split_answer_clause(text: str) -> tuple[str, str | None]:
    """Split ``text`` at the first answer prefix: (reasoning before it, text after it or None)."""
    match = ANSWER_PREFIX.search(text)
    if match is None:
        return text, None
    return text[: match.start()], text[match.end() :]


def count_words(text: str) -> int:
    return len(WORD.findall(text))


def has_reasoning(text: str, min_words: int) -> bool:
    """True when at least ``min_words`` words come before an answer clause.

    A continuation that answers without any step before the answer prefix ("So the answer is 4.")
    or never states an answer does not count as reasoning towards an answer.
    """
    reasoning, after = split_answer_clause(text)
    return after is not None and count_words(reasoning) >= min_words


def is_imitative(text: str) -> bool:
    """The continuation starts a new ``Question: ... Answer:`` block (the paper's imitative generation)."""
    return IMITATION.search(text) is not None


def lists_options(text: str, min_distinct: int = 3) -> bool:
    """The continuation enumerates several answer options ("(A) ... (B) ... (C)"): option listing."""
    return len(set(CHOICE_MARKER.findall(text))) >= min_distinct
