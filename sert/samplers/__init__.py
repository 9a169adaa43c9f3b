"""Samplers: the paper's latent-path sampling, one backend per ``sample.backend`` value.

A backend is a ``Sampler`` subclass (``sert.samplers.base``) in its own module here, decorated
with ``@register_sampler`` (its ``name`` is the ``sample.backend`` value), and imported below;
``open_sampler`` builds the one the ``sample`` params name. Every backend writes the same
``Sample`` records, so the filter stage cannot tell them apart.
  hf    the hand-written KV-cached transformers decoder, and greedy generation for evaluation
        (``sert.samplers.hf``)
  vllm  vLLM on a GPU, imported only when a sampler is built (``sert.samplers.vllm_engine``; not
        ``vllm.py``, which would shadow the vllm package)
Backends import ``sert.samplers.base`` and ``sert.samplers.registry``, never this package, so no
import goes in a circle (tests/test_import_cycles.py).
"""

from __future__ import annotations

from sert.samplers.base import Budget, Progress, Sample, Sampler, batches, covering_prefix, fit_budget, kept_perplexity, perplexity, trim_at_stop
from sert.samplers.registry import SAMPLERS, open_sampler, register_sampler, sampler_class

from sert.samplers import hf, vllm_engine  # noqa: E402,F401,I001  (they register themselves)
from sert.samplers.hf import (Generation, HFSampler, generate_greedy, resolve_device,  # noqa: E402,I001
                              sample_latent_paths)

__all__ = ["SAMPLERS", "Budget", "Generation", "HFSampler", "Progress", "Sample", "Sampler",
           "batches", "covering_prefix", "fit_budget", "generate_greedy", "kept_perplexity", "open_sampler",
           "perplexity", "register_sampler", "resolve_device", "sample_latent_paths", "sampler_class",
           "trim_at_stop"]
