"""`sert train` as two processes on CPU (torchrun, gloo) on the tiny pipeline's outputs.

- The two ranks end with the same weights, and those are the one-process run's with the same
  effective batch: bit for bit against one process with ``grad_accum: 2`` (the same two
  micro-batches: DDP's all-reduce of two gradients is the one addition that accumulation does), and
  within float rounding against one process with the batch in one piece.
- Only rank 0 writes: the outputs, the metrics, the loss curve and the checkpoints.
- A launcher killed with SIGKILL takes its workers with it, and a rerun resumes from the latest
  checkpoint and ends with the uninterrupted run's weights, with dropout on (each rank's RNG is
  restored).

The two-process runs use ``tests/rank_probe.py`` (the real command, recording each rank's weights
and writes) or the ``sert`` command itself under torchrun, as docs/sampling-and-training.md shows.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import ROOT, copy_project

WORLD = 2
STEPS = 10
"""Optimizer steps of the equivalence runs: 5 epochs of the tiny project's 12 questions in batches of 8."""
ROUNDING = 1e-3
"""Largest weight difference allowed between the two-process run and one process with the batch in
one piece. The two differ only by float rounding (two micro-batches padded to their own widths,
summed in another order): measured 8.1e-5 after the 10 steps. Adam moves a weight by up to about
lr = 1e-3 a step (the largest change over the run is 1.0e-2), so a run that trains on the wrong
rows is off by the order of the updates themselves (both ranks on the first micro-batch: 1.3e-2)."""

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="needs torch.distributed with gloo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def torchrun(*command: str) -> list[str]:
    """A two-process torchrun of ``command`` on a free port (``--no-python``: ``command`` is a program)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD),
            "--master_port", str(free_port()), *command]


def launch(args: list[str], cwd: Path, **extra) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env={**env(), **extra}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def set_train(project: Path, **values) -> None:
    """Change the copy's ``train`` params; always on CPU (gloo) in fp32, whatever the machine has, and
    at lr 1e-3, whatever the default, so that training moves the weights well past ``ROUNDING``."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update(device="cpu", precision="fp32", lr=1e-3, **values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors" if path.is_dir() else path)


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def clear_outputs(project: Path) -> None:
    """Remove the copied `train finetune` outputs, so that what is there afterwards is this run's."""
    for path in (project / "models/finetune", project / "metrics/train/finetune.json",
                 project / "metrics/plots/train/finetune.csv"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


@pytest.fixture(scope="module")
def equivalence(project, tmp_path_factory):
    """`sert train finetune` with one process (batch in one piece; two micro-batches) and with two."""
    base = tmp_path_factory.mktemp("multiprocess")
    runs = {}
    for name, grad_accum in (("one", 1), ("one_accum", 2), ("two", 1)):
        copy = copy_project(project, base / name, commit=False)
        set_train(copy, epochs=5, grad_accum=grad_accum, checkpoint_every=4)  # checkpoints at 4, 8, 10
        clear_outputs(copy)
        started = time.time()
        if name == "two":
            probe = base / "probe"
            probe.mkdir()
            launch(torchrun(str(ROOT / "tests" / "rank_probe.py"), "train", "finetune"), copy,
                   SERT_PROBE_DIR=str(probe))
        else:
            launch(["sert", "train", "finetune"], copy)
        print(f"{name}: {time.time() - started:.1f} s")
        runs[name] = copy
    return runs, probe


def test_both_ranks_end_with_the_same_weights(equivalence):
    runs, probe = equivalence
    ranks = [weights(probe / f"rank{r}.safetensors") for r in range(WORLD)]
    assert identical(ranks[0], ranks[1])
    saved = weights(runs["two"] / "models/finetune")  # what rank 0 saved (lm_head is tied to wte: not saved)
    assert identical({k: ranks[0][k] for k in saved}, saved)


def test_two_processes_train_as_one_with_the_same_effective_batch(equivalence):
    runs, _ = equivalence
    one, accum, two = (weights(runs[n] / "models/finetune") for n in ("one", "one_accum", "two"))
    start = weights(runs["one"] / "models/base")
    moved = max_diff(one, start)
    diff = max_diff(two, one)
    print(f"largest change by training {moved:.3g}; two processes vs one: {diff:.3g}")
    assert moved > 10 * ROUNDING  # training moved the weights well beyond the tolerance
    assert identical(two, accum)
    assert 0 < diff <= ROUNDING
    metrics = [json.loads((runs[n] / "metrics/train/finetune.json").read_text()) for n in ("one_accum", "two")]
    assert metrics[0] == metrics[1] and metrics[1]["steps"] == STEPS


def test_only_rank_0_writes(equivalence):
    runs, probe = equivalence
    writes = [(probe / f"rank{r}.writes").read_text().splitlines() for r in range(WORLD)]
    assert writes[1] == []
    for out in ("models/finetune", "metrics/train/finetune.json", "metrics/plots/train/finetune.csv",
                ".sert-cache/checkpoints/train-finetune/"):
        assert any(w.startswith(out) for w in writes[0]), (out, writes[0])  # the probe sees rank 0's writes
    curve = (runs["two"] / "metrics/plots/train/finetune.csv").read_text().splitlines()
    assert curve == (runs["one_accum"] / "metrics/plots/train/finetune.csv").read_text().splitlines()
    assert curve[0] == "step,loss" and [row.split(",")[0] for row in curve[1:]] == [str(s) for s in range(1, STEPS + 1)]
    assert not (runs["two"] / ".sert-cache/checkpoints/train-finetune").exists()  # removed with the outputs written


def processes(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def with_dropout(project: Path) -> None:
    """Turn dropout on in the copy's base model, so that a resumed run needs each rank's RNG."""
    config = project / "models/base/config.json"
    values = json.loads(config.read_text())
    values.update(resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    config.write_text(json.dumps(values, indent=2))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with the launcher on Linux only")
def test_killed_launcher_takes_its_workers_and_a_rerun_resumes(project, tmp_path):
    checkpoints = ".sert-cache/checkpoints/train-finetune"
    straight, killed = (copy_project(project, tmp_path / name, commit=False) for name in ("straight", "killed"))
    for copy in (straight, killed):
        with_dropout(copy)
        set_train(copy, epochs=50, checkpoint_every=10)  # 100 steps
        clear_outputs(copy)
    launch(torchrun("--no-python", "sert", "train", "finetune"), straight)

    # The output goes to a file: a pipe closed with the launcher would end the workers on their next
    # write (SIGPIPE), whatever they do about a dead launcher.
    log = tmp_path / "killed.log"
    with open(log, "w") as output:
        launcher = subprocess.Popen(torchrun("--no-python", "sert", "train", "finetune"), cwd=killed, env=env(),
                                    stdout=output, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not any((killed / checkpoints).glob("*/step-*")):
        assert launcher.poll() is None, f"the run ended before its first checkpoint: {log.read_text()[-2000:]}"
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    workers = processes(launcher.pid)
    assert len(workers) == WORLD
    assert launcher.poll() is None and not (killed / "models/finetune").exists(), \
        "the run finished before the kill: the test proves nothing"
    launcher.send_signal(signal.SIGKILL)  # the launcher only: the workers are in sessions of their own
    launcher.wait()
    deadline = time.time() + 30
    while any(alive(w) for w in workers):
        assert time.time() < deadline, "the workers outlived their killed launcher"
        time.sleep(0.05)
    assert not (killed / "models/finetune").exists(), "the workers outlived their killed launcher and finished the run"

    out = launch(torchrun("--no-python", "sert", "train", "finetune"), killed).stdout
    assert "resumed from step" in out, out[-2000:]
    step = int(out.split("resumed from step ")[1].split()[0])
    print(f"killed and rerun: resumed from step {step} of 100")
    assert 10 <= step < 100 and step % 10 == 0
    assert identical(weights(killed / "models/finetune"), weights(straight / "models/finetune"))
    assert (killed / "metrics/plots/train/finetune.csv").read_text() == \
        (straight / "metrics/plots/train/finetune.csv").read_text()
    assert not (killed / checkpoints).exists()
