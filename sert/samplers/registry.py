"""Sampler registry: backends register themselves with ``@register_sampler`` and ``sert.samplers``
imports them. This module imports no backend, so the backends import it without a circle."""

from __future__ import annotations

from pathlib import Path

from sert.config import SampleConfig
from sert.errors import ParamsError
from sert.samplers.base import Sampler

SAMPLERS: dict[str, type[Sampler]] = {}
"""Backend name -> class, filled by ``@register_sampler`` as ``sert.samplers`` imports the backends."""


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    SAMPLERS[cls.name] = cls
    return cls


def sampler_class(backend: str) -> type[Sampler]:
    """The class registered as ``backend``; an unknown name is a one-line ``ParamsError`` (config
    rejects it at load already; this guards a config built in code)."""
    if backend not in SAMPLERS:
        raise ParamsError(f"sample.backend: unknown backend {backend!r}; available: {', '.join(sorted(SAMPLERS))}")
    return SAMPLERS[backend]


def open_sampler(cfg: SampleConfig, model_path: str | Path, model=None, tokenizer=None,
                 trust_remote_code: bool = False) -> Sampler:
    """The sampler of ``cfg.backend``: on ``model``/``tokenizer`` when given (the model being
    self-trained, in memory) and the backend can sample in memory (hf, on ``cfg.device``), else
    loaded from ``model_path`` (vLLM loads checkpoints only; it is imported only when asked for)."""
    cls = sampler_class(cfg.backend)
    if model is not None and cls.in_memory:
        return cls.from_model(model, tokenizer, cfg)
    return cls.from_checkpoint(model_path, cfg, trust_remote_code)
