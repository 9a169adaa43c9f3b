"""Sharded, resumable JSONL output: a killed run keeps its finished shards and continues.

Work is split into numbered units (a batch of questions each). Each finished unit is written
atomically as ``shard-NNNNNN.jsonl`` in a work directory keyed by a hash of everything that
determines the output (inputs, params, code version of the records), so a shard is reused only
by a run that would have computed the very same records. When all units are done the shards are
concatenated in unit order into the final output (atomically too) and the work directory is
removed. Because each unit's records depend only on the unit itself (per-question seeding in
sert/samplers/hf.py), the result is byte-identical to an uninterrupted run.

The work directory lives outside DVC's outputs on purpose: ``dvc repro`` deletes a stage's
outputs before running it (unless ``persist: true``), which would throw the shards away.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from sert.io import read_jsonl, write_jsonl
from sert.workers import ordered_map


def fingerprint(parts: Iterable[Any], files: Iterable[Path] = ()) -> str:
    """A hex digest of JSON-serialisable ``parts`` and the bytes of ``files`` (directories recursively)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False).encode() + b"\0")
    for root in files:
        paths = sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).is_dir() else [Path(root)]
        for path in paths:
            digest.update(str(path.relative_to(root) if Path(root).is_dir() else path.name).encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
    return digest.hexdigest()


class ShardedWriter:
    """Run ``units`` numbered jobs, one shard each, under ``root/<key>``, then assemble ``output``."""

    def __init__(self, root: Path, key: str, units: int):
        self.root, self.dir, self.units = Path(root), Path(root) / key[:16], units

    def shard(self, unit: int) -> Path:
        return self.dir / f"shard-{unit:06d}.jsonl"

    def done(self) -> list[int]:
        return [u for u in range(self.units) if self.shard(u).is_file()]

    def fill(self, compute: Callable[[int], list[dict]],
             after_unit: Callable[[int, list[dict]], None] | None = None, workers: int = 1) -> int:
        """Compute the missing shards (removing other keys' work under ``root`` first) and keep
        them, ``workers`` units at a time (sert/workers.py; each shard is written as soon as its
        unit is done). Returns how many shards were already there (resumed)."""
        if self.root.is_dir():  # shards of other inputs can never be reused
            for stale in self.root.iterdir():
                if stale != self.dir:
                    shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink()
        self.dir.mkdir(parents=True, exist_ok=True)
        resumed = len(self.done())

        def compute_and_keep(unit: int) -> tuple[int, list[dict]]:
            records = compute(unit)
            write_jsonl(self.shard(unit), records)
            return unit, records

        missing = [u for u in range(self.units) if not self.shard(u).is_file()]
        for unit, records in ordered_map(compute_and_keep, missing, workers):
            if after_unit is not None:
                after_unit(unit, records)
        return resumed

    def records(self) -> Iterator[dict]:
        """Every finished shard's records, in unit order."""
        return (r for u in range(self.units) for r in read_jsonl(self.shard(u)))

    def run(self, compute: Callable[[int], list[dict]], output: Path,
            after_unit: Callable[[int, list[dict]], None] | None = None) -> tuple[int, int]:
        """Compute the missing shards, then write ``output`` and remove the work directory.
        Returns (records, resumed shards)."""
        resumed = self.fill(compute, after_unit)
        return self.assemble(output), resumed

    def assemble(self, output: Path) -> int:
        """Write every shard's records, in unit order, to ``output``; remove the work directory."""
        count = write_jsonl(output, self.records())
        shutil.rmtree(self.dir, ignore_errors=True)
        return count
