"""What every sampling backend shares: the ``Sample`` record, fitting prompts and budgets to the
model's context (``Budget``), cutting at stop strings, perplexity (whole and kept part), the
``Sampler`` interface the sample stage drives, and its batching and progress bar.

Backends live beside this module and import it (see ``sert.samplers`` for the list)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from tqdm.auto import tqdm

from sert.config import SampleConfig
from sert.text import split_answer_clause


@dataclass
class Sample:
    """One sampled continuation, as written to ``data/samples.jsonl``."""

    id: str
    branch: int
    """First-step branch index (0..branches-1), or -1 for ``branching: raw``."""
    branch_token: str
    """Text of the branch's first token ("" for ``branching: raw``)."""
    text: str
    """The sample's text (special tokens skipped; an EOS branch's end token is not part of it)."""
    n_tokens: int
    """Generated tokens in the sample: the branch token and its continuation, without a final
    EOS; for an EOS branch the continuation only."""
    perplexity: float | None
    """exp of the mean negative log-probability of the sample's tokens under the model
    (untempered); ``null`` for an empty sample (no tokens: no perplexity, and JSON has no Infinity)."""
    rep2: float
    """Token-bigram repetition rate of the sample's tokens."""
    eos_branch: bool = False
    """The first-step branch token is one of the model's end tokens (e.g. GPT-2's
    ``<|endoftext|>``): the continuation is sampled after that document boundary, as the model
    would, and is the sample (the paper lists such a branch); the filter funnel counts them."""
    kept_perplexity: float | None = None
    """Perplexity of the tokens that make up the kept reasoning (``sert.text.kept_reasoning``: the
    text before the first "the answer is", what self-training keeps; the shortest token prefix
    covering it): what the perplexity filter measures by default. Equals ``perplexity`` when the
    sample has no answer clause; ``null`` when nothing is kept (the sample opens with the clause)."""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Budget:
    """Prompt token ids and generation budgets after fitting them to the model's context."""

    prompt_ids: list[list[int]]
    max_new: list[int]
    truncated_prompts: int = 0
    """Prompts left-truncated to leave min(max_new_tokens, n_positions // 2) tokens for generation."""
    shortened: int = 0
    """Questions whose generation budget is below max_new_tokens because of the context length."""

    def warning(self, n_positions: int | None) -> str | None:
        if not (self.truncated_prompts or self.shortened):
            return None
        return (f"warning: the model's {n_positions}-token context: {self.truncated_prompts} of "
                f"{len(self.max_new)} prompts left-truncated, {self.shortened} generations shorter than "
                "max_new_tokens")


def fit_budget(tokenizer, prompts: Sequence[str], max_new_tokens: int, n_positions: int | None) -> Budget:
    """Tokenize ``prompts`` and cap each generation so that prompt + new tokens <= n_positions.

    A long prompt shortens its generation, down to min(max_new_tokens, n_positions // 2) new
    tokens; a prompt longer than that allows is left-truncated (the question's end and the
    answer cue matter most for what comes next).
    """
    ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    budget = Budget(prompt_ids=[], max_new=[])
    for row in ids:
        row = row or [tokenizer.eos_token_id]  # an empty prompt conditions on EOS, as GPT-2 does
        new = max_new_tokens
        if n_positions is not None and len(row) + new > n_positions:
            reserve = min(max_new_tokens, n_positions // 2)
            if len(row) > n_positions - reserve:
                row = row[len(row) - (n_positions - reserve):]
                budget.truncated_prompts += 1
            new = n_positions - len(row)
            budget.shortened += new < max_new_tokens
        budget.prompt_ids.append(row)
        budget.max_new.append(new)
    return budget


def covering_prefix(tokenizer, ids: Sequence[int], n_chars: int) -> int:
    """The number of leading tokens in the shortest prefix of ``ids`` whose text covers its first
    ``n_chars`` characters (a token straddling the boundary is included)."""
    keep = 0
    while keep < len(ids) and len(tokenizer.decode(ids[:keep], skip_special_tokens=True)) < n_chars:
        keep += 1
    return keep


def trim_at_stop(tokenizer, ids: list[int], logprobs: list[float], stops: Sequence[str]):
    """Cut a generation at its first stop string: (text, ids, logprobs) of what comes before it.

    The kept tokens are the shortest prefix whose text covers everything before the stop.
    """
    text = tokenizer.decode(ids, skip_special_tokens=True)
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if cut < 0:
        return text, ids, logprobs
    keep = covering_prefix(tokenizer, ids, cut)
    return text[:cut], ids[:keep], logprobs[:keep]


def kept_perplexity(tokenizer, text: str, ids: Sequence[int], logprobs: Sequence[float]) -> float | None:
    """Perplexity of the tokens of ``text``'s kept reasoning (what self-training keeps: the text
    before its first answer clause, ``sert.text.split_answer_clause``; trailing whitespace is not
    kept). The whole sample's when it has no answer clause; None when nothing is kept."""
    reasoning, clause = split_answer_clause(text)
    if clause is None:
        return perplexity(logprobs)
    n_chars = len(reasoning.rstrip())
    return perplexity(logprobs[: covering_prefix(tokenizer, ids, n_chars)]) if n_chars else None


def perplexity(logprobs: Sequence[float]) -> float | None:
    """exp(mean negative log-probability); None for no tokens (written as JSON null, never Infinity)."""
    return math.exp(-sum(logprobs) / len(logprobs)) if len(logprobs) else None


def batches(n: int, size: int) -> list[range]:
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


class Progress:
    """A tqdm bar over questions that also shows generated tokens/s; decode workers update it
    from their threads."""

    def __init__(self, total: int, desc: str, initial: int = 0):
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="q")
        self.tokens, self.start = 0, time.perf_counter()
        self.lock = threading.Lock()

    def update(self, questions: int, tokens: int) -> None:
        with self.lock:
            self.tokens += tokens
            rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate:.0f} tok/s", refresh=False)
            self.bar.update(questions)

    def close(self) -> None:
        self.bar.close()


class Sampler:
    """Interface: what ``sert.selftrain.sample_shards`` drives. ``plan`` fits every prompt to the
    model's context once; ``sample`` then gives ``branches x samples_per_branch`` samples per
    question of one batch, question-major, independent of how the questions are batched."""

    name: ClassVar[str]
    """The ``sample.backend`` value that selects this backend (``@register_sampler`` reads it)."""
    in_memory: ClassVar[bool] = False
    """Whether ``from_model`` can sample with a model already in memory (the model being
    self-trained); a backend that loads checkpoints only gets the GPU to itself instead."""
    n_positions: int | None
    """The model's context length (None: unbounded), for ``Budget.warning``."""
    workers: int = 1
    """Batches ``sample`` may be called on at once, from as many threads (sert/workers.py); a
    backend whose ``sample`` is not thread-safe, or that batches on its own (vLLM), keeps 1."""

    @classmethod
    def from_checkpoint(cls, path: str | Path, cfg: SampleConfig, trust_remote_code: bool = False,
                        stop_at_eos: bool = True) -> Sampler:
        raise NotImplementedError

    @classmethod
    def from_model(cls, model, tokenizer, cfg: SampleConfig, stop_at_eos: bool = True) -> Sampler:
        raise NotImplementedError(f"sample.backend {cls.name} loads checkpoints only")

    def plan(self, prompts: Sequence[str]) -> Budget:
        raise NotImplementedError

    def sample(self, ids: Sequence[str], prompt_ids: list[list[int]], max_new: list[int]) -> list[Sample]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds (an engine's GPU memory); nothing by default."""
