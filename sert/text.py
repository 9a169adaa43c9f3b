"""Text statistics and answer-clause handling shared by filtering, formats and evaluation.

Everything here is pure and cheap; it takes arbitrary unicode and never raises on it.

Units. The paper's Len and Rep (Table II) are counted in whitespace-separated words, case kept:
Fine-tune-CoT's text-davinci-002 completions for the 687 StrategyQA test questions, each scored
as ``rationale + "\\nTherefore, the answer is" + answer``, give exactly its teacher row (76.77
words, unigram repetition 0.36) this way; \\w+ words give 78.17 / 0.40 and lowercased words
76.77 / 0.38 (tests/test_real_text.py). ``words`` is that unit; filters and metrics use it.

Reasoning vs. direct response (the paper's pattern filter drops "direct responses without
reasoning" but gives no rule; ours, chosen from real SmolLM2 outputs):
  the *kept reasoning* is the text before the first answer clause ("the answer is"), the part
  that self-training keeps; a leading bare answer ("Yes.", "No,", "(B)", "B)", "1. Yes.") is
  not reasoning, so it is set aside. The output is a *direct response* when what remains has
  fewer than ``min_words`` words, or when it opened with a bare answer and what follows is a
  single sentence (an answer with a one-clause restatement: "No, a pear cannot sink in water.").
A coherent path that never says "the answer is" is reasoning (the gold answer is appended to it
in the self-training text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# "So the answer is", "Therefore, the answer is", "the answer is" (Fine-tune-CoT's prefixes).
ANSWER_PREFIX = re.compile(r"(?:(?:so|therefore|thus|hence),?\s+)?the\s+answer\s+is\b:?", re.IGNORECASE)
# The prompt's own structure appearing again inside a continuation (imitative generation).
IMITATION = re.compile(r"(?:^|\W)(?:Question|Q)\s*:|\n\s*(?:Answer|A)\s*:")
# Option markers: "(C)" anywhere, or "C)", "C:", "C." opening a line ("\nB: No, ...", "B). No").
CHOICE_MARKER = re.compile(r"\(([A-E])\)|(?:^|\n)[ \t]*([A-E])(?:\)|:|\.(?!\w))")
# A bare answer opening the output: an optional list number, then yes/no/true/false or an
# option letter, then punctuation ("Yes.", " No, ...", "(B)", "B)", "1. Yes.").
BARE_ANSWER = re.compile(
    r"^\s*(?:\d{1,2}[.)]\s+)?(?:\(?(?i:yes|no|true|false)\b\)?|\([A-E]\)|[A-E](?:[.):,]|$))[\s.,;:!]*")
# A sentence ends at . ! ? (not inside a number like 1.5) or at a line break.
SENTENCE_END = re.compile(r"(?<!\d)[.!?]+(?=\s|$)|\n+")


def words(text: str) -> list[str]:
    """The paper's unit for Len, Rep and rep-2: whitespace-separated words, case and
    punctuation kept (see the module docstring for the check against Table II)."""
    return text.split()


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


def kept_reasoning(text: str) -> str:
    """What self-training keeps of a sampled path: the text before its first answer clause,
    whitespace collapsed (its own conclusion is dropped; the gold answer is appended instead)."""
    return " ".join(split_answer_clause(text)[0].split())


def count_words(text: str) -> int:
    return len(words(text))


def count_sentences(text: str) -> int:
    """Sentences holding at least one word."""
    return sum(1 for part in SENTENCE_END.split(text) if part.split())


def is_direct_response(text: str, min_words: int) -> bool:
    """A direct response without reasoning (module docstring): judged on the kept reasoning."""
    reasoning = split_answer_clause(text)[0]
    bare = BARE_ANSWER.match(reasoning)
    rest = reasoning[bare.end():] if bare else reasoning
    if count_words(rest) < max(1, min_words):
        return True
    return bare is not None and count_sentences(rest) <= 1


def is_imitative(text: str) -> bool:
    """The continuation starts a new ``Question: ... Answer:`` block (the paper's imitative generation)."""
    return IMITATION.search(text) is not None


def lists_options(text: str, min_distinct: int = 3) -> bool:
    """The continuation enumerates several answer options ("(A) ... (B) ... (C)", or one per
    line "A: ...\\nB: ...\\nC: ..."): option listing."""
    return len({a or b for a, b in CHOICE_MARKER.findall(text)}) >= min_distinct


def pattern_failure(text: str, min_words: int) -> str | None:
    """Why the paper's pattern filter drops ``text`` (``imitative``, ``option_listing``,
    ``direct_response``), or None when it is a reasoning path."""
    if is_imitative(text):
        return "imitative"
    if lists_options(text):
        return "option_listing"
    if is_direct_response(text, min_words):
        return "direct_response"
    return None


def has_reasoning(text: str, min_words: int) -> bool:
    """A reasoning path: not imitative, no option listing, not a direct response. An answer
    clause is not required (a path that never concludes is what the paper keeps)."""
    return pattern_failure(text, min_words) is None
