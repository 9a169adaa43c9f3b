"""Training checkpoints: save every N steps, resume from the latest valid one.

A checkpoint is a directory ``<root>/<run key>/step-<N>/`` holding

- ``model.safetensors``: the weights (safetensors; tied weights handled by ``save_model``),
- ``trainer.pt``: optimizer and scheduler state dicts and the torch RNG states of every process of
  the run (one entry per rank: under ``accelerate launch`` / torchrun each process draws its own
  dropout masks), only tensors and plain containers of numbers, so it loads with
  ``torch.load(weights_only=True)``,
- ``state.json``: the run key, the step, the remaining data order, the Python RNG state of the
  data order and the losses so far.

The directory is written under a temporary name and renamed into place, so a process killed at
any moment leaves either a complete checkpoint or none. The run key is a hash of everything
that determines the result (config, examples, initial weights, number of steps), so a run never
resumes from a checkpoint of a different run; directories of other keys are removed on start.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from sert.io import atomic_path

KEEP = 2
"""Checkpoints kept per run: the newest, and one before it in case the newest is unreadable."""


def run_key(parts: dict[str, Any], examples: list[tuple[list[int], list[bool]]], model) -> str:
    """A hash of the config ``parts``, the training examples and the initial weights."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    for ids, mask in examples:
        h.update(json.dumps([ids, mask]).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def rng_state() -> dict[str, Any]:
    """This process's torch RNG states: the CPU generator and, where there is CUDA, every visible device's."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Resumed:
    """What a checkpoint restores besides the model and optimizer."""

    step: int
    order: list[int]
    python_rng: tuple
    losses: list[float]


class Checkpoints:
    """The checkpoints of one run, under ``root / key``."""

    def __init__(self, root: Path, key: str):
        self.root = Path(root)
        self.key = key
        self.dir = self.root / key

    def prepare(self) -> None:
        """Create the run directory and remove those of other runs (stale params or data)."""
        if self.root.is_dir():
            for other in self.root.iterdir():
                if other.name != self.key:
                    shutil.rmtree(other, ignore_errors=True) if other.is_dir() else other.unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def steps(self) -> list[Path]:
        """Complete checkpoint directories, newest first (temporaries start with a dot)."""
        if not self.dir.is_dir():
            return []
        found = [p for p in self.dir.glob("step-*") if p.is_dir()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True)

    def save(self, step: int, model, optimizer, scheduler, order: list[int], python_rng: tuple,
             losses: list[float], rng_states: list[dict[str, Any]]) -> None:
        """Write checkpoint ``step``. ``rng_states``: :func:`rng_state` of every process, by rank
        (one process saves the run; the optimizer state is the same in all of them)."""
        with atomic_path(self.dir / f"step-{step:08d}", directory=True) as tmp:
            save_model(model, str(tmp / "model.safetensors"))
            trainer = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_states}
            torch.save(trainer, tmp / "trainer.pt")
            version, internal, gauss = python_rng
            (tmp / "state.json").write_text(json.dumps({
                "key": self.key, "step": step, "order": order,
                "python_rng": [version, list(internal), gauss], "losses": losses,
            }))
        for old in self.steps()[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)

    def load_latest(self, model, optimizer, scheduler, rank: int = 0) -> Resumed | None:
        """Load the newest readable checkpoint into model/optimizer/scheduler and restore process
        ``rank``'s RNG states; None if there is none. (The run key counts the processes, so a
        checkpoint holds one RNG entry per rank of the run that reads it.)"""
        for path in self.steps():
            try:
                state = json.loads((path / "state.json").read_text())
                if state["key"] != self.key:
                    continue
                trainer = torch.load(path / "trainer.pt", weights_only=True, map_location="cpu")
                rng = trainer["rng"][rank]
                load_model(model, str(path / "model.safetensors"), device=str(next(model.parameters()).device))
            except Exception as err:  # a damaged checkpoint is skipped, never fatal: the older one is tried
                print(f"checkpoint {path}: unreadable ({type(err).__name__}: {err}); trying an older one",
                      file=sys.stderr)
                continue
            optimizer.load_state_dict(trainer["optimizer"])
            scheduler.load_state_dict(trainer["scheduler"])
            set_rng_state(rng)
            version, internal, gauss = state["python_rng"]
            return Resumed(state["step"], state["order"], (version, tuple(internal), gauss), state["losses"])
        return None
