"""Decoding: the paper's latent-path sampling, and greedy generation for evaluation.

Hand-written on purpose (about a hundred lines) instead of calling ``generate``: the paper's
protocol branches on the first token, then samples several continuations per branch, and we
want the model's own (unwarped) log-probability of every sampled token for perplexity without
a second forward pass. Each prompt is encoded once; its KV cache is repeated for its
branches x samples rows, and rows that reach EOS leave the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from sert.text import rep_n


@dataclass
class SampleConfig:
    """Latent-path sampling (paper: 5 first-step branches x 5 samples, top-k 10, top-p 0.95)."""

    branches: int = 5
    """Top-k alternatives for the first generated token; each starts a branch."""
    samples_per_branch: int = 5
    """Continuations sampled from each branch."""
    top_k: int = 10
    """Sample among the k most likely tokens..."""
    top_p: float = 0.95
    """...then among the smallest set of them holding this probability mass."""
    temperature: float = 1.0
    """Softmax temperature for sampling (not stated by the paper; 1.0)."""
    max_new_tokens: int = 64
    """Generated tokens per sample, the branch token included."""
    batch_size: int = 16
    """Questions per batch (rows = questions x branches x samples)."""
    seed: int = 0
    """Sampling seed (each batch derives its own generator from it)."""


@dataclass
class Sample:
    """One sampled continuation, as written to ``data/samples.jsonl``."""

    id: str
    branch: int
    branch_token: str
    text: str
    n_tokens: int
    perplexity: float
    rep2: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    logprobs: list[float]


def top_k_top_p(logits: torch.Tensor, k: int, p: float, temperature: float, generator: torch.Generator):
    """Sample one token per row: top-k first, then nucleus sampling on the k candidates only."""
    values, indices = logits.topk(min(k, logits.shape[-1]), dim=-1)
    probs = torch.softmax(values / temperature, dim=-1)
    mass_before = probs.cumsum(-1) - probs
    probs = probs.masked_fill(mass_before >= p, 0.0)  # the top candidate is always kept
    choice = torch.multinomial(probs, 1, generator=generator)
    return indices.gather(-1, choice).squeeze(-1)


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1)


@torch.no_grad()
def _prefill(model, tokenizer, prompts: list[str]):
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    mask = enc["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=positions, use_cache=True)
    return torch.log_softmax(out.logits[:, -1, :].float(), -1), out.past_key_values, mask


@torch.no_grad()
def _continue(model, past, mask, first: torch.Tensor, first_logprobs: torch.Tensor, max_new_tokens: int,
              pick: Callable[[torch.Tensor], torch.Tensor], eos_id: int) -> list[tuple[list[int], list[float]]]:
    """Feed ``first`` tokens after the cached prompts and decode until EOS or the length limit.

    Returns, per row, the generated token ids (EOS excluded) and their log-probabilities under
    the model (before any top-k/top-p warping).
    """
    rows = first.shape[0]
    out_ids: list[list[int]] = [[] for _ in range(rows)]
    out_lps: list[list[float]] = [[] for _ in range(rows)]
    active = torch.arange(rows)
    token, logprob = first, first_logprobs
    for step in range(max_new_tokens):
        for row, tok, lp in zip(active.tolist(), token.tolist(), logprob.tolist()):
            if tok != eos_id:
                out_ids[row].append(tok)
                out_lps[row].append(lp)
        keep = token != eos_id
        if step == max_new_tokens - 1 or not keep.any():
            break
        if not keep.all():  # finished rows leave the batch and the cache
            active, token, mask = active[keep], token[keep], mask[keep]
            past.batch_select_indices(keep.nonzero().squeeze(-1))
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        positions = mask.sum(-1, keepdim=True) - 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions,
                    past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[:, -1, :].float()
        token = pick(logits)
        logprob = torch.log_softmax(logits, -1).gather(-1, token[:, None]).squeeze(-1)
    return list(zip(out_ids, out_lps))


def _batches(items: list, size: int) -> Iterator[tuple[int, list]]:
    for start in range(0, len(items), size):
        yield start // size, items[start : start + size]


def sample_latent_paths(model, tokenizer, prompts: list[tuple[str, str]], cfg: SampleConfig) -> Iterator[Sample]:
    """Yield ``branches x samples_per_branch`` samples for every ``(id, prompt)``."""
    model.eval()
    eos = tokenizer.eos_token_id
    per_question = cfg.branches * cfg.samples_per_branch
    with tqdm(total=len(prompts) * per_question, desc="sample", unit="seq") as bar:
        for index, batch in _batches(prompts, cfg.batch_size):
            generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + index)
            logprobs, past, mask = _prefill(model, tokenizer, [p for _, p in batch])
            branch_lp, branch_ids = logprobs.topk(cfg.branches, dim=-1)  # (questions, branches)
            past.batch_repeat_interleave(per_question)
            mask = mask.repeat_interleave(per_question, dim=0)
            first = branch_ids.repeat_interleave(cfg.samples_per_branch, dim=1).reshape(-1)
            first_lp = branch_lp.repeat_interleave(cfg.samples_per_branch, dim=1).reshape(-1)
            pick = lambda logits: top_k_top_p(logits, cfg.top_k, cfg.top_p, cfg.temperature, generator)  # noqa: E731
            results = _continue(model, past, mask, first, first_lp, cfg.max_new_tokens, pick, eos)
            for row, (ids, lps) in enumerate(results):
                question, rest = divmod(row, per_question)
                branch = rest // cfg.samples_per_branch
                yield Sample(
                    id=batch[question][0],
                    branch=branch,
                    branch_token=tokenizer.decode([int(branch_ids[question, branch])]),
                    text=tokenizer.decode(ids, skip_special_tokens=True),
                    n_tokens=len(ids),
                    perplexity=math.exp(-sum(lps) / len(lps)) if lps else float("inf"),
                    rep2=rep_n(ids, 2),
                )
            bar.update(len(results))


def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
                    desc: str = "generate") -> list[Generation]:
    """Greedy continuations of ``prompts``, batched by similar length, returned in input order."""
    model.eval()
    eos = tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    with tqdm(total=len(prompts), desc=desc, unit="q") as bar:
        for _, chunk in _batches(order, batch_size):
            logprobs, past, mask = _prefill(model, tokenizer, [prompts[i] for i in chunk])
            first_lp, first = logprobs.max(-1)
            for i, (ids, lps) in zip(chunk, _continue(model, past, mask, first, first_lp, max_new_tokens, greedy, eos)):
                results[i] = Generation(tokenizer.decode(ids, skip_special_tokens=True), ids, lps)
            bar.update(len(chunk))
    return results  # type: ignore[return-value]
