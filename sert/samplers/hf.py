"""The transformers backend (``sample.backend: hf``): the paper's latent-path sampling, and greedy
generation for evaluation.

Hand-written on purpose (a few hundred lines) instead of calling ``generate``: the paper's
protocol branches on the first token, then samples several continuations per branch, and we
want the model's own (unwarped) log-probability of every sampled token for perplexity without
a second forward pass. How it is fast and reproducible:

- Many questions per batch, left-padded, with explicit position ids (each row counts its own
  positions from its first real token), so a padded row computes what it would alone.
- Each prompt is encoded once; its KV cache (a ``DynamicCache``) is repeated for its
  branches x samples rows, and rows that finish (EOS, a stop string, their length budget) leave
  the batch and the cache.
- Top-k, then top-p on the k candidates only (no full-vocabulary sort), then temperature.
- Randomness is per question: every question draws its own uniforms (one per row and step)
  from a generator seeded by ``(seed, question id)``, and a row samples by inverting the CDF of
  its candidates with its own uniform. A question's samples therefore do not depend on which
  other questions share its batch, on the batch size, or on rows dropping out; that is what
  lets a killed run resume shard by shard and still match an uninterrupted one.
- A row ends at any end token the model declares (tokenizer EOS and generation config). A
  first-step branch that is an end token is decoded on after it, as after a document boundary.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from sert.config import SampleConfig
from sert.runtime import decode_workers
from sert.samplers.base import (Budget, Progress, Sample, Sampler, batches, fit_budget, kept_perplexity, perplexity,
                                trim_at_stop)
from sert.samplers.registry import register_sampler
from sert.text import rep_n
from sert.workers import cancellation_point, ordered_map


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    logprobs: list[float]


def end_token_ids(model, tokenizer) -> list[int]:
    """Every id the model declares as end of text: the tokenizer's EOS and the generation
    config's ``eos_token_id`` (an int or a list, e.g. Llama-3 chat models end at two tokens)."""
    ids = {tokenizer.eos_token_id}
    declared = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(declared if isinstance(declared, (list, tuple)) else [declared])
    return sorted(i for i in ids if i is not None)


def context_length(model) -> int | None:
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def question_uniforms(seed: int, question_id: str, rows: int, steps: int) -> torch.Tensor:
    """(rows, steps) uniforms from a generator seeded by ``(seed, question_id)`` only."""
    digest = hashlib.sha256(f"{seed}\0{question_id}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return torch.rand((rows, steps), generator=generator, dtype=torch.float64)


def top_k_top_p(logits: torch.Tensor, k: int, p: float, temperature: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Sample one token per row: top-k first, then nucleus sampling on the k candidates only.

    Inverse-CDF sampling with one given uniform per row (instead of ``torch.multinomial`` with a
    shared generator) keeps every row's draw independent of the other rows in the batch.
    """
    values, indices = logits.topk(min(k, logits.shape[-1]), dim=-1)
    probs = torch.softmax(values.double() / temperature, dim=-1)
    mass_before = probs.cumsum(-1) - probs
    probs = probs.masked_fill(mass_before >= p, 0.0)  # the top candidate is always kept
    cdf = probs.cumsum(-1)
    choice = (cdf < uniforms[:, None] * cdf[:, -1:]).sum(-1).clamp(max=probs.shape[-1] - 1)
    return indices.gather(-1, choice[:, None]).squeeze(-1)


def _token_logprob(logits: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    # logit - logsumexp: one pass over the vocabulary instead of a full log_softmax tensor
    return logits.gather(-1, token[:, None]).squeeze(-1) - logits.logsumexp(-1)


VOCAB_BLOCK_BYTES = 1 << 21
"""Bytes of fp32 logits that :func:`_pick_in_blocks` works on at a time (about the L2 cache of one core)."""


def _pick_in_blocks(logits: torch.Tensor, pick: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
                    rows: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``pick`` the next token of every row of ``logits`` (rows x vocabulary, any float dtype) and its
    log-probability, a block of rows at a time in fp32.

    Every step's work over the whole vocabulary (fp32 copy, top-k, logsumexp) runs on blocks that
    fit a core's cache instead of one (rows x vocabulary) fp32 tensor: on the CPU a fresh tensor
    that large comes from mmap and is page-faulted in on every step, and converting bf16 logits of
    200 rows x 50,257 tokens in one piece took longer than the output head's matmul
    (benchmarks/vocab_step.py). Every operation here works row by row, so the blocks change no
    result: picking and log-probabilities are the same bit for bit as on the whole tensor."""
    block = max(1, VOCAB_BLOCK_BYTES // (4 * logits.shape[-1]))
    if logits.shape[0] <= block:
        logits = logits.float()
        token = pick(logits, rows, step)
        return token, _token_logprob(logits, token)
    tokens, logprobs = [], []
    for start in range(0, logits.shape[0], block):
        part = logits[start:start + block].float()
        token = pick(part, rows[start:start + block], step)
        tokens.append(token)
        logprobs.append(_token_logprob(part, token))
    return torch.cat(tokens), torch.cat(logprobs)


class _PreallocatedLayer(DynamicLayer):
    """A cache layer that writes each step's keys/values into a buffer sized for the whole
    generation. ``DynamicLayer`` grows by ``torch.cat``, copying the entire cache of every row at
    every step: with 25 rows per question that copy was the decoder's largest non-matmul cost.
    ``keys``/``values`` are views of the filled part, so the rest of the Cache API still works."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.key_buffer = self.value_buffer = None

    def _reallocate(self, rows: int, capacity: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        shape = (rows, keys.shape[1], capacity, keys.shape[3])
        self.key_buffer = keys.new_empty(shape)
        self.value_buffer = values.new_empty(shape)
        filled = keys.shape[-2]
        self.key_buffer[:, :, :filled] = keys
        self.value_buffer[:, :, :filled] = values
        self.keys, self.values = self.key_buffer[:, :, :filled], self.value_buffer[:, :, :filled]

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states[:, :, :0], value_states[:, :, :0]
        start = self.keys.shape[-2]
        end = start + key_states.shape[-2]
        if self.key_buffer is None or end > self.key_buffer.shape[-2]:
            self._reallocate(key_states.shape[0], max(end, self.capacity), self.keys, self.values)
        self.key_buffer[:, :, start:end] = key_states
        self.value_buffer[:, :, start:end] = value_states
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            self._reallocate(self.keys.shape[0] * repeats, self.capacity, self.keys.repeat_interleave(repeats, dim=0),
                             self.values.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            # Copy only the filled positions of the kept rows into fresh buffers (indexing the
            # buffers copied their whole capacity: on SmolLM2, 30 layers x 200 rows, that copy was
            # 17% of the sampling time; now 2%).
            filled = self.keys.shape[-2]
            shape = (len(indices), *self.key_buffer.shape[1:])
            keys, values = self.key_buffer.new_empty(shape), self.value_buffer.new_empty(shape)
            torch.index_select(self.keys, 0, indices, out=keys[:, :, :filled])
            torch.index_select(self.values, 0, indices, out=values[:, :, :filled])
            self.key_buffer, self.value_buffer = keys, values
            self.keys, self.values = keys[:, :, :filled], values[:, :, :filled]


def _cache_arg(model) -> str:
    """The forward argument that takes the KV cache: ``cache`` since transformers 5.24, before that
    ``past_key_values`` (the package supports both; GPU images often ship an older release)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(out):
    return out["cache"] if "cache" in out else out["past_key_values"]


def _new_cache(model, capacity: int) -> DynamicCache:
    cache = DynamicCache(config=model.config)
    # The preallocated layer relies on DynamicLayer internals of the releases with the ``cache``
    # argument; older ones keep the stock (concatenating) layers.
    if _cache_arg(model) == "cache" and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [_PreallocatedLayer(capacity) for _ in cache.layers]
    return cache


@torch.inference_mode()
def _prefill(model, prompt_ids: list[list[int]], pad_id: int, max_new: int = 0):
    """One forward pass over left-padded prompts: last-position log-probs, the cache, the mask."""
    device = model.device
    width = max(len(p) for p in prompt_ids)
    # padding is masked out, so any id works (a tokenizer without a pad token is fine)
    ids = torch.full((len(prompt_ids), width), pad_id if pad_id is not None else 0, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, p in enumerate(prompt_ids):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # each row counts from its first real token
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                **{_cache_arg(model): _new_cache(model, width + max_new)})
    return torch.log_softmax(out.logits[:, -1, :].float(), -1), _cache_of(out), mask


class _StopWatch:
    """Ends rows whose recent text contains a stop string (tail decode: a stop of n bytes spans
    at most n tokens, so the last n + 1 tokens always contain a stop that just completed)."""

    def __init__(self, tokenizer, stops: Sequence[str]):
        self.tokenizer, self.stops = tokenizer, [s for s in stops if s]
        self.tail = max((len(s.encode()) for s in self.stops), default=0) + 1

    def hits(self, tokens: torch.Tensor, rows: torch.Tensor, length: int) -> torch.Tensor:
        if not self.stops:
            return torch.zeros(len(rows), dtype=torch.bool)
        tails = tokens[rows, max(0, length - self.tail):length].tolist()
        texts = self.tokenizer.batch_decode(tails)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], dtype=torch.bool)


@torch.inference_mode()
def _continue(model, cache, mask, first: torch.Tensor, first_logprobs: torch.Tensor, limits: torch.Tensor,
              pick: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor], end_ids: Sequence[int] | None,
              stop: _StopWatch | None = None, first_is_context: bool = False) -> list[tuple[list[int], list[float]]]:
    """Feed ``first`` tokens after the cached prompts and decode until each row finishes.

    A row finishes at an end token (one of ``end_ids``, excluded from its output; None disables
    it), when it holds ``limits[row]`` tokens, or when a stop string appears.
    ``first_is_context``: an end token as ``first`` token does not end the row (EOS branches:
    decoding goes on after the document boundary). ``pick(logits, rows, step)``
    chooses the next token of the active ``rows`` at generation step ``step``. Returns, per
    row, the generated ids and their log-probabilities under the model (unwarped).
    """
    cache_arg = _cache_arg(model)
    rows, steps = first.shape[0], int(limits.max())
    device = first.device
    tokens = torch.full((rows, steps), -1, dtype=torch.long)
    logprobs = torch.zeros((rows, steps), dtype=torch.float64)
    length = limits.clone()
    active = torch.arange(rows)
    token, logprob = first, first_logprobs
    ends = torch.tensor(list(end_ids)) if end_ids else None
    for step in range(steps):
        cancellation_point()  # another worker failed, or the caller stopped
        token_cpu = token.cpu()
        tokens[active, step] = token_cpu
        logprobs[active, step] = logprob.double().cpu()
        done = step + 1 >= limits[active]
        if ends is not None and not (first_is_context and step == 0):
            is_eos = torch.isin(token_cpu, ends)
            length[active[is_eos]] = step  # EOS itself is not part of the output
            done |= is_eos
        if stop is not None:
            done |= stop.hits(tokens, active, step + 1)
        length[active[done & (length[active] > step + 1)]] = step + 1
        if done.all():
            break
        if done.any():  # finished rows leave the batch and the cache
            keep = (~done).nonzero().squeeze(-1)
            active, token = active[keep], token[keep.to(device)]
            mask = mask[keep.to(device)]
            cache.batch_select_indices(keep.to(device))
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        positions = mask.sum(-1, keepdim=True) - 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions, use_cache=True,
                    **{cache_arg: cache})
        cache = _cache_of(out)
        token, logprob = _pick_in_blocks(out.logits[:, -1, :], pick, active, step + 1)
    return [(tokens[r, : length[r]].tolist(), logprobs[r, : length[r]].tolist()) for r in range(rows)]


def sample_batch(model, tokenizer, ids: Sequence[str], prompt_ids: list[list[int]], max_new: list[int],
                 cfg: SampleConfig, stop_at_eos: bool = True) -> list[Sample]:
    """``branches x samples_per_branch`` samples for each question of one batch, question-major.

    ``stop_at_eos=False`` decodes every row to its full budget (benchmarks). A ``topk`` branch
    whose token is an end token is decoded on after it (``Sample.eos_branch``).
    """
    model.eval()
    device = model.device
    per_question = cfg.branches * cfg.samples_per_branch
    steps = max(max_new)
    uniforms = torch.cat([question_uniforms(cfg.seed, qid, per_question, steps) for qid in ids])
    limits = torch.tensor(max_new).repeat_interleave(per_question)
    logprobs, cache, mask = _prefill(model, prompt_ids, tokenizer.pad_token_id, steps)
    if cfg.branching == "topk":
        branch_lp, branch_ids = logprobs.topk(cfg.branches, dim=-1)  # (questions, branches)
        first = branch_ids.repeat_interleave(cfg.samples_per_branch, dim=1).reshape(-1)
        first_lp = branch_lp.repeat_interleave(cfg.samples_per_branch, dim=1).reshape(-1)
    else:
        expanded = logprobs.repeat_interleave(per_question, dim=0)
        first = top_k_top_p(expanded, cfg.top_k, cfg.top_p, cfg.temperature, uniforms[:, 0].to(device))
        first_lp = expanded.gather(-1, first[:, None]).squeeze(-1)
    cache.batch_repeat_interleave(per_question)
    mask = mask.repeat_interleave(per_question, dim=0)

    def pick(logits, rows, step):
        return top_k_top_p(logits, cfg.top_k, cfg.top_p, cfg.temperature, uniforms[rows, step].to(logits.device))

    stop = _StopWatch(tokenizer, cfg.stop) if cfg.stop else None
    ends = end_token_ids(model, tokenizer) if stop_at_eos else None
    eos_rows = (torch.isin(first.cpu(), torch.tensor(ends)) if ends and cfg.branching == "topk"
                else torch.zeros(len(first), dtype=torch.bool)).tolist()
    results = _continue(model, cache, mask, first, first_lp, limits, pick, ends, stop,
                        first_is_context=cfg.branching == "topk")
    samples = []
    for row, (tok_ids, lps) in enumerate(results):
        question, rest = divmod(row, per_question)
        if eos_rows[row]:  # the end token is context, not text of the sample
            tok_ids, lps = tok_ids[1:], lps[1:]
        text, tok_ids, lps = trim_at_stop(tokenizer, tok_ids, lps, cfg.stop)
        if cfg.branching == "topk":
            branch = rest // cfg.samples_per_branch
            branch_token = tokenizer.decode([int(branch_ids[question, branch])])
        else:
            branch, branch_token = -1, ""
        samples.append(Sample(id=ids[question], branch=branch, branch_token=branch_token, text=text,
                              n_tokens=len(tok_ids), perplexity=perplexity(lps), rep2=rep_n(tok_ids, 2),
                              eos_branch=bool(eos_rows[row]),
                              kept_perplexity=kept_perplexity(tokenizer, text, tok_ids, lps)))
    return samples


@register_sampler
class HFSampler(Sampler):
    """The transformers backend behind the interface the sample stage drives (``sert.samplers.base.Sampler``)."""

    name = "hf"
    in_memory = True

    def __init__(self, model, tokenizer, cfg: SampleConfig, stop_at_eos: bool = True):
        self.model, self.tokenizer, self.cfg, self.stop_at_eos = model, tokenizer, cfg, stop_at_eos
        self.n_positions = context_length(model)
        self.workers = decode_workers(model.device.type)

    @classmethod
    def from_checkpoint(cls, path: str | Path, cfg: SampleConfig, trust_remote_code: bool = False,
                        stop_at_eos: bool = True) -> HFSampler:
        from sert.modeling import load_student

        model, tokenizer = load_student(str(path), trust_remote_code)
        return cls.from_model(model, tokenizer, cfg, stop_at_eos)

    @classmethod
    def from_model(cls, model, tokenizer, cfg: SampleConfig, stop_at_eos: bool = True) -> HFSampler:
        """Sample with ``model`` as it is in memory, moved to ``cfg.device`` (and cast to a copy in
        bf16 when ``cfg.precision`` resolves to it)."""
        from sert.modeling import for_inference

        return cls(for_inference(model.to(resolve_device(cfg.device)), cfg.precision, "sample"), tokenizer, cfg,
                   stop_at_eos)

    def plan(self, prompts: Sequence[str]) -> Budget:
        return fit_budget(self.tokenizer, prompts, self.cfg.max_new_tokens, self.n_positions)

    def sample(self, ids: Sequence[str], prompt_ids: list[list[int]], max_new: list[int]) -> list[Sample]:
        return sample_batch(self.model, self.tokenizer, ids, prompt_ids, max_new, self.cfg, self.stop_at_eos)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def sample_latent_paths(model, tokenizer, prompts: list[tuple[str, str]], cfg: SampleConfig,
                        stop_at_eos: bool = True) -> Iterator[Sample]:
    """Yield ``branches x samples_per_branch`` samples for every ``(id, prompt)``, in input order."""
    sampler = HFSampler(model, tokenizer, cfg, stop_at_eos)
    budget = sampler.plan([p for _, p in prompts])
    progress = Progress(len(prompts), "sample")

    def one_batch(chunk: range) -> list[Sample]:
        samples = sampler.sample([prompts[i][0] for i in chunk], [budget.prompt_ids[i] for i in chunk],
                                 [budget.max_new[i] for i in chunk])
        progress.update(len(chunk), sum(s.n_tokens for s in samples))
        return samples

    try:
        for samples in ordered_map(one_batch, batches(len(prompts), cfg.batch_size), sampler.workers):
            yield from samples
    finally:
        progress.close()


def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
                    desc: str = "generate") -> list[Generation]:
    """Greedy continuations of ``prompts`` with the sampler's batching, returned in input order.

    Batches group prompts of similar length (less padding); results do not depend on grouping.
    Several batches run at once on a CPU (``sert.runtime.decode_workers``), which changes no result.
    """
    model.eval()
    budget = fit_budget(tokenizer, prompts, max_new_tokens, context_length(model))
    order = sorted(range(len(prompts)), key=lambda i: len(budget.prompt_ids[i]))
    results: list[Generation | None] = [None] * len(prompts)
    progress = Progress(len(prompts), desc)
    ends = end_token_ids(model, tokenizer)

    def one_batch(chunk_range: range) -> tuple[list[int], list[tuple[list[int], list[float]]]]:
        chunk = [order[i] for i in chunk_range]
        limits = torch.tensor([budget.max_new[i] for i in chunk])
        logprobs, cache, mask = _prefill(model, [budget.prompt_ids[i] for i in chunk], tokenizer.pad_token_id,
                                         int(limits.max()))
        first_lp, first = logprobs.max(-1)
        out = _continue(model, cache, mask, first, first_lp, limits, lambda logits, rows, step: logits.argmax(-1), ends)
        progress.update(len(chunk), sum(len(ids) for ids, _ in out))
        return chunk, out

    try:
        for chunk, out in ordered_map(one_batch, batches(len(order), batch_size), decode_workers(model.device.type)):
            for i, (ids, lps) in zip(chunk, out):
                results[i] = Generation(tokenizer.decode(ids, skip_special_tokens=True), ids, lps)
    finally:
        progress.close()
    return results  # type: ignore[return-value]
