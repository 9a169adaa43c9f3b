"""Read a cell's dumped test predictions (run.py --dump DIR): how many of the written steps
"a + b = c" are right, and how often the stated answer is the chain's last result.

    PYTHONPATH=$PWD python results/coverage/steps.py DIR/*.jsonl
"""

from __future__ import annotations

import json
import re
import sys

STEP = re.compile(r"(\d) \+ (\d) = (\d)")


def main(paths: list[str]) -> None:
    for path in paths:
        rows = [json.loads(line) for line in open(path, encoding="utf-8")]
        chains = [[tuple(map(int, m)) for m in STEP.findall(r["output"])] for r in rows]
        steps = [s for chain in chains for s in chain]
        right = sum((a + b) % 10 == c for a, b, c in steps)
        ends = [(chain[-1][2], r["prediction"]) for chain, r in zip(chains, rows) if chain and r["prediction"] is not None]
        follows = sum(str(last) == pred for last, pred in ends)
        positions = max((len(chain) for chain in chains), default=0)
        share = [sum((a + b) % 10 == c for chain in chains if len(chain) > i for a, b, c in [chain[i]])
                 / max(1, sum(len(chain) > i for chain in chains)) for i in range(positions)]
        print(f"{path}: accuracy {sum(r['correct'] for r in rows) / len(rows):.3f}, "
              f"steps right {right}/{len(steps)} = {right / max(1, len(steps)):.3f} "
              f"(by position: {', '.join(f'{x:.2f}' for x in share)}), "
              f"answer = last step's result {follows}/{len(ends)} = {follows / max(1, len(ends)):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
