"""Intervals and paired tests for a committed run in results/<preset>/ (printed as markdown).

  python results/summarize.py results/strategyqa-smollm2-cpu

Per variant: accuracy and reasoning rate with 95% Wilson intervals. Pairs of variants, compared on
the same test questions: McNemar's exact test, i.e. a two-sided binomial test on the questions where
exactly one of the two is right. The statistics are the report's own (sert/stats.py); this script
reads only files that results/run.sh copies, so it also summarizes runs whose report predates them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sert.stats import compare_paired, wilson as wilson_interval

VARIANTS = ("base", "finetune", "sert", "rd", "sert_rd")
PAIRS = (("sert", "base"), ("sert_rd", "rd"), ("rd", "finetune"), ("sert_rd", "sert"), ("finetune", "base"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def wilson(k: int, n: int) -> str:
    low, high = wilson_interval(k, n)
    return f"{k / n:.3f} [{low:.3f}, {high:.3f}]"


def main(run: Path) -> None:
    records = {v: read_jsonl(run / "predictions" / f"{v}.jsonl") for v in VARIANTS}
    print("| method | n | accuracy [95% Wilson] | reasoning rate [95% Wilson] |\n|---|---|---|---|")
    for v, rows in records.items():
        n = len(rows)
        print(f"| {v} | {n} | {wilson(sum(r['correct'] for r in rows), n)} | "
              f"{wilson(sum(r['reasoning'] for r in rows), n)} |")
    print("\n| a vs b | accuracy a - b | a right, b wrong | a wrong, b right | McNemar exact p |\n|---|---|---|---|---|")
    for a, b in PAIRS:
        right = {r["id"]: r["correct"] for r in records[b]}
        assert set(right) == {r["id"] for r in records[a]}, f"{a} and {b} were not scored on the same questions"
        c = compare_paired([r["correct"] for r in records[a]], [right[r["id"]] for r in records[a]])
        print(f"| {a} vs {b} | {c.difference:+.3f} | {c.a_only} | {c.b_only} | {c.p_value:.3f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/strategyqa-smollm2-cpu"))
