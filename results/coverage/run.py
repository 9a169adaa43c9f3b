"""RD vs SERT+RD in the tiny world with a scarce (and optionally erring) oracle teacher.

For every (error_rate, coverage, seed) cell: the oracle teacher with ``teacher.coverage``,
``teacher.error_rate`` and ``teacher.seed`` = seed writes its rationales (``teacher.only_correct``
keeps or drops the wrong ones, as in the pipeline); RD trains from models/base and SERT+RD from
models/sert on the kept ones with the default ``train`` params and ``train.seed`` = seed; both are
evaluated greedily on the test split. The calls are the pipeline's own (sert/teachers/ for the
rationales, sert/variants.py for the texts and training, sert/model_eval.py for evaluation, sert/stats.py for the tests),
run in one process so no cell's model is written to disk.

Needs the default pipeline's data/prepared, models/base and models/sert in the working directory
(`dvc checkout` from a cache that holds them, or `dvc repro train_sert`). Run from the repository
root:

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python results/coverage/run.py            # all cells, then render
    PYTHONPATH=$PWD python results/coverage/run.py --render-only                 # table + figure again

Cells already in results/coverage/coverage.json are skipped, so an interrupted study resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import time
from html import escape
from pathlib import Path

import torch
import yaml

from sert import paths
from sert.config import Params, parse_section
from sert.io import read_jsonl
from sert.modeling import load_student, save_student
from sert.stats import mcnemar_exact, wilson
from sert.svg import COLORS, document, label
from sert.tasks import get_task, read_examples
from sert.teachers import get_teacher, kept_rationales
from sert.training import final_loss, train_causal_lm
from sert.model_eval import evaluate_model
from sert.variants import distill_texts, encode_texts, self_training_texts

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "coverage.json"
SERT_CACHE = Path(".sert-cache/coverage")
"""Retrained SERT models (--sert-model retrained), kept between runs (gitignored)."""
METHODS = {"rd": (label("rd"), COLORS[3]), "sert_rd": (label("sert_rd"), COLORS[0])}


def retrained_sert(p, task, test, seed: int) -> tuple[str, dict]:
    """The SERT model as `dvc exp run -S train.seed=<seed>` would train it (the self-training texts of
    data/self_train.jsonl, from models/base), saved once under .sert-cache/coverage, and its test
    metrics (evaluated like evaluate@sert)."""
    out = SERT_CACHE / f"sert-seed{seed}"
    if not (out / "metrics.json").is_file():
        torch.manual_seed(seed)
        model, tokenizer = load_student("models/base")
        texts = self_training_texts(read_jsonl(paths.SELF_TRAIN, required=("id", "question", "answer", "reasoning")),
                                    p.prompts)
        losses = train_causal_lm(model, encode_texts(tokenizer, texts),
                                 dataclasses.replace(p.train, seed=seed), tokenizer.pad_token_id, desc=f"sert s={seed}")
        result = evaluate(model, tokenizer, p, task, test)[1]
        save_student(model, tokenizer, out)
        (out / "metrics.json").write_text(json.dumps({**result, "final_loss": final_loss(losses)}))
    return str(out), json.loads((out / "metrics.json").read_text())


def evaluate(model, tokenizer, p, task, test) -> tuple[list[dict], dict]:
    """Greedy test predictions and the metrics a cell keeps, as evaluate@<trained variant> computes them."""
    records, metrics = evaluate_model(model, tokenizer, task, test, p.prompts.train, p.evaluate)
    k, n = metrics["n_correct"], metrics["n"]
    return records, {"accuracy": metrics["accuracy"], "n_correct": k, "n": n,
                     "accuracy_ci": [round(x, 4) for x in wilson(k, n)],
                     "reasoning_rate": metrics["reasoning_rate"],
                     # Per test question, in test-split order: the paired test needs them.
                     "correct": "".join("1" if r["correct"] else "0" for r in records)}


def run_cell(p, task, train, test, coverage: float, error_rate: float, seed: int, sert_init: str = "models/sert",
             rd: dict | None = None, dump: Path | None = None) -> dict:
    teacher_cfg = dataclasses.replace(p.teacher, coverage=coverage, error_rate=error_rate, seed=seed)
    teacher = get_teacher(teacher_cfg, task)
    rationales = teacher.rationales(train)
    # The train stage's texts for the rd / sert_rd variants (the only-correct rule included).
    texts = distill_texts(train, [r.to_json() for r in rationales], p.prompts, p.teacher.only_correct)
    kept = kept_rationales(rationales, p.teacher.only_correct)
    assert len(texts) == kept
    train_cfg = dataclasses.replace(p.train, seed=seed)
    cell = {"coverage": coverage, "error_rate": error_rate, "seed": seed, "only_correct": p.teacher.only_correct,
            **teacher.extra_metrics(), "kept": kept}
    for method, init in (("rd", "models/base"), ("sert_rd", sert_init)):
        if method == "rd" and rd is not None:  # RD does not depend on the SERT model: reuse the cell's
            cell["rd"] = rd
            continue
        started = time.time()
        torch.manual_seed(seed)
        model, tokenizer = load_student(init)
        losses = train_causal_lm(model, encode_texts(tokenizer, texts), train_cfg, tokenizer.pad_token_id,
                                 desc=f"{method} c={coverage} s={seed}")
        records, result = evaluate(model, tokenizer, p, task, test)
        if dump is not None:
            name = f"e{error_rate:g}-c{coverage:g}-s{seed}-{method}-{Path(init).name}.jsonl"
            (dump / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        # final_loss: to compare with metrics/train/<variant>.json at coverage 1.0 and seed 0.
        cell[method] = {**result, "steps": len(losses), "final_loss": final_loss(losses),
                        "seconds": round(time.time() - started, 1)}
    cell["mcnemar"] = mcnemar(cell["sert_rd"]["correct"], cell["rd"]["correct"])
    return cell


def mcnemar(a: str, b: str) -> dict:
    """Exact McNemar test of a vs b on the same questions: a binomial test on the discordant pairs."""
    a_only = sum(x == "1" and y == "0" for x, y in zip(a, b))
    b_only = sum(x == "0" and y == "1" for x, y in zip(a, b))
    return {"a_only": a_only, "b_only": b_only, "p_value": float(f"{mcnemar_exact(a_only, b_only):.3g}")}


def key(cell: dict) -> tuple:
    return (cell.get("sert_model", "committed"), cell["error_rate"], cell["only_correct"], cell["coverage"], cell["seed"])


# -- rendering ------------------------------------------------------------------------------------

def verdict(cell: dict, alpha: float = 0.05) -> str:
    m = cell["mcnemar"]
    if m["p_value"] >= alpha:
        return "no difference shown"
    return "SERT+RD better" if m["a_only"] > m["b_only"] else "RD better"


def setting(cell: dict) -> tuple:
    """What a panel of the figure / a block of the tables holds fixed."""
    return cell.get("sert_model", "committed"), cell["error_rate"], cell["only_correct"]


def setting_name(s: tuple) -> str:
    sert = "models/sert (train.seed 0)" if s[0] == "committed" else "SERT retrained with train.seed = seed"
    return f"SERT+RD from {sert}, error_rate {s[1]:g}, only_correct {str(s[2]).lower()}"


def fmt(result: dict) -> str:
    return f"{result['accuracy']:.3f} [{result['accuracy_ci'][0]:.3f}, {result['accuracy_ci'][1]:.3f}]"


def render_table(cells: list[dict]) -> str:
    out = []
    for s in sorted({setting(c) for c in cells}):
        retrained = s[0] != "committed"
        out += [f"**{setting_name(s)}**", "",
                "| coverage | seed | covered | wrong | kept | RD accuracy [95% CI] | SERT+RD accuracy [95% CI] | "
                + ("SERT accuracy | " if retrained else "") + "SERT+RD only / RD only | McNemar p | verdict (p < 0.05) |",
                "|---:|---:|---:|---:|---:|---|---|" + ("---|" if retrained else "") + "---:|---:|---|"]
        for c in sorted((c for c in cells if setting(c) == s), key=key):
            m = c["mcnemar"]
            sert = f"{c['sert']['accuracy']:.3f} | " if retrained else ""
            out.append(f"| {c['coverage']:g} | {c['seed']} | {c['covered']} | {c['wrong']} | {c['kept']} | "
                       f"{fmt(c['rd'])} | {fmt(c['sert_rd'])} | {sert}{m['a_only']} / {m['b_only']} | "
                       f"{m['p_value']:.3g} | {verdict(c)} |")
        out.append("")
    return "\n".join(out)


def render_summary(cells: list[dict]) -> str:
    """Per setting and coverage: accuracy range over seeds and how many seeds show each verdict."""
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault((*setting(c), c["coverage"]), []).append(c)
    lines = ["| SERT model | error_rate | only_correct | coverage | seeds | RD accuracy (min-max) | "
             "SERT+RD accuracy (min-max) | SERT+RD better (p < 0.05) | RD better | no difference shown |",
             "|---|---:|:---:|---:|---:|---|---|---:|---:|---:|"]
    for g in sorted(groups):
        cs = groups[g]
        rng = {m: f"{min(c[m]['accuracy'] for c in cs):.3f}-{max(c[m]['accuracy'] for c in cs):.3f}" for m in METHODS}
        v = [verdict(c) for c in cs]
        lines.append(f"| {g[0]} | {g[1]:g} | {str(g[2]).lower()} | {g[3]:g} | {len(cs)} | {rng['rd']} | {rng['sert_rd']} | "
                     f"{v.count('SERT+RD better')} | {v.count('RD better')} | {v.count('no difference shown')} |")
    return "\n".join(lines)


def render_svg(cells: list[dict]) -> str:
    """Accuracy against coverage (log scale), one panel per setting: per-seed points with Wilson 95%
    bars, and a line through each method's mean over seeds."""
    panels = sorted({setting(c) for c in cells})
    coverages = sorted({c["coverage"] for c in cells})
    seeds = sorted({c["seed"] for c in cells})
    pw, ph, left, top, bottom, gap = 420, 260, 60, 84, 60, 30
    width = max(640, left + len(panels) * (pw + gap) + 20)
    height = top + ph + bottom
    lo, hi = math.log10(min(coverages)), math.log10(max(coverages))
    out = [f'<text x="{left}" y="18" font-weight="bold">RD vs SERT+RD in the tiny world (modsum), by teacher coverage</text>',
           f'<text x="{left}" y="34" fill="#666" font-size="10">test accuracy (200 questions, greedy); dots: seeds '
           f'{", ".join(map(str, seeds))} (train.seed = teacher.seed) with Wilson 95% bars;</text>',
           f'<text x="{left}" y="48" fill="#666" font-size="10">line: mean over seeds. Chance: 0.1.</text>']
    for pi, s in enumerate(panels):
        x0 = left + pi * (pw + gap)

        def px(cov, x0=x0):
            return x0 + 20 + (math.log10(cov) - lo) / ((hi - lo) or 1) * (pw - 40)

        def py(acc):
            return top + ph - acc * ph

        out.append(f'<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        sert = "SERT: models/sert" if s[0] == "committed" else "SERT: retrained per seed"
        out.append(f'<text x="{x0 + pw / 2}" y="{top - 6}" text-anchor="middle" font-size="11">{sert}; '
                   f'error_rate {s[1]:g}, only_correct {str(s[2]).lower()}</text>')
        for acc in (0, 0.25, 0.5, 0.75, 1):
            out.append(f'<line x1="{x0}" y1="{py(acc):.1f}" x2="{x0 + pw}" y2="{py(acc):.1f}" stroke="#eee"/>')
            out.append(f'<text x="{x0 - 6}" y="{py(acc) + 4:.1f}" text-anchor="end" font-size="10">{acc:g}</text>')
        for cov in coverages:
            out.append(f'<text x="{px(cov):.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="10">{cov:g}</text>')
        out.append(f'<text x="{x0 + pw / 2}" y="{top + ph + 34}" text-anchor="middle" font-size="11">'
                   f'teacher.coverage (share of 400 train questions, log scale)</text>')
        mine = [c for c in cells if setting(c) == s]
        for mi, (method, (label, color)) in enumerate(METHODS.items()):
            means = []
            for cov in coverages:
                at = [c for c in mine if c["coverage"] == cov]
                if at:
                    means.append((cov, sum(c[method]["accuracy"] for c in at) / len(at)))
                for c in at:
                    # Small horizontal offsets keep methods and seeds apart.
                    x = px(cov) + (mi - 0.5) * 12 + (seeds.index(c["seed"]) - (len(seeds) - 1) / 2) * 3
                    a, (l, h) = c[method]["accuracy"], c[method]["accuracy_ci"]
                    out.append(f'<line x1="{x:.1f}" y1="{py(l):.1f}" x2="{x:.1f}" y2="{py(h):.1f}" stroke="{color}" '
                               f'stroke-opacity="0.6"/>')
                    out.append(f'<circle cx="{x:.1f}" cy="{py(a):.1f}" r="2.5" fill="{color}"/>')
            if means:
                path = " ".join(f"{px(cv) + (mi - 0.5) * 12:.1f},{py(m):.1f}" for cv, m in means)
                out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
            ly = top + 14 + mi * 16
            out.append(f'<line x1="{x0 + 10}" y1="{ly - 4}" x2="{x0 + 30}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>')
            out.append(f'<text x="{x0 + 34}" y="{ly}" font-size="11">{escape(label)}</text>')
    return document(width, height, out)


def render(cells: list[dict]) -> None:
    for c in cells:  # from the stored per-question results, so a change to the test reaches every cell
        c["mcnemar"] = mcnemar(c["sert_rd"]["correct"], c["rd"]["correct"])
    (HERE / "coverage.svg").write_text(render_svg(cells), encoding="utf-8")
    (HERE / "table.md").write_text("## Per coverage, over seeds\n\n" + render_summary(cells) + "\n\n## Per cell\n\n"
                                   + render_table(cells), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coverages", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.25, 0.5, 1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--error-rates", type=float, nargs="+", default=[0.0])
    ap.add_argument("--keep-wrong", action="store_true",
                    help="teacher.only_correct false: distil the wrong rationales too (default: params.yaml's value)")
    ap.add_argument("--sert-model", choices=("committed", "retrained"), default="committed",
                    help="SERT+RD from models/sert (committed), or from SERT retrained with train.seed = seed "
                         "(what `dvc exp run -S train.seed=<seed>` trains)")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--results", type=Path, default=RESULTS, help="cells file (default: results/coverage/coverage.json)")
    ap.add_argument("--dump", type=Path, help="also write each cell's test predictions there (for reading the errors)")
    args = ap.parse_args()
    data = json.loads(args.results.read_text()) if args.results.is_file() else {"cells": []}
    if not args.render_only:
        p = parse_section(Params, yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8")), "")
        if args.keep_wrong:
            p.teacher = dataclasses.replace(p.teacher, only_correct=False)
        task = get_task(p.task)
        train, test = read_examples(paths.TRAIN), read_examples(paths.TEST)
        done = {key(c): c for c in data["cells"]}
        for err in args.error_rates:
            for cov in args.coverages:
                for seed in args.seeds:
                    if (args.sert_model, err, p.teacher.only_correct, cov, seed) in done:
                        continue
                    started = time.time()
                    rd = done.get(("committed", err, p.teacher.only_correct, cov, seed), {}).get("rd")
                    extra = {}
                    sert_init = "models/sert"
                    if args.sert_model == "retrained":
                        sert_init, sert = retrained_sert(p, task, test, seed)
                        extra = {"sert_model": "retrained", "sert": sert}
                    cell = {**run_cell(p, task, train, test, cov, err, seed, sert_init, rd, args.dump), **extra}
                    cell["seconds"] = round(time.time() - started, 1)
                    data["cells"].append(cell)
                    done[key(cell)] = cell
                    data["machine"] = f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}"
                    args.results.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
                    print(f"cell {key(cell)}: kept {cell['kept']}, RD {cell['rd']['accuracy']:.3f}, "
                          f"SERT+RD {cell['sert_rd']['accuracy']:.3f}, p={cell['mcnemar']['p_value']:.3g}, "
                          f"{cell['seconds']} s", flush=True)
    if args.results.resolve() == RESULTS:
        render(data["cells"])


if __name__ == "__main__":
    main()
