"""The thread policy (set before torch loads OpenMP; the user's environment wins; bad values get a
one-line error) and precision resolution (bf16 only where the device computes it natively)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sert.errors import ParamsError
from sert.runtime import (DEFAULT_THREADS, DEFAULT_WAIT_POLICY, SPIN_COUNT, CpuReading, InferenceThreads,
                          apply_thread_policy, check_thread_policy, free_cores, native_bf16, resolve_precision,
                          threads_for, usable_cpus)

ROOT = Path(__file__).resolve().parents[1]


def test_policy_fills_only_what_the_environment_leaves_unset():
    env = {}
    policy = apply_thread_policy(env)
    assert env == {"OMP_NUM_THREADS": str(DEFAULT_THREADS), "OMP_WAIT_POLICY": DEFAULT_WAIT_POLICY}
    assert policy.from_user == ()
    env = {"OMP_NUM_THREADS": "2"}
    policy = apply_thread_policy(env)
    assert env == {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": DEFAULT_WAIT_POLICY}
    assert policy.from_user == ("OMP_NUM_THREADS",)
    env = {"OMP_NUM_THREADS": "", "OMP_WAIT_POLICY": "ACTIVE"}  # empty counts as unset
    apply_thread_policy(env)
    assert env == {"OMP_NUM_THREADS": str(DEFAULT_THREADS), "OMP_WAIT_POLICY": "ACTIVE"}
    env = {"SERT_INFERENCE_THREADS": "auto"}  # opted in: idle threads spin a little instead of sleeping
    policy = apply_thread_policy(env)
    assert env == {"SERT_INFERENCE_THREADS": "auto", "OMP_NUM_THREADS": str(DEFAULT_THREADS),
                   "GOMP_SPINCOUNT": SPIN_COUNT, "KMP_BLOCKTIME": "10"}
    assert policy.wait_policy == f"spin {SPIN_COUNT}"


def test_inference_threads_count_only_the_cores_other_processes_leave_free():
    assert [threads_for(free, 2) for free in (2.0, 1.8, 1.75, 1.7, 1.0, 0.3, 0.0)] == [2, 2, 2, 1, 1, 1, 1]
    assert threads_for(7.9, 4) == 4 and threads_for(3.0, 1) == 1
    before = CpuReading(wall=10.0, busy=100.0, own=40.0)
    # 2 s on 2 CPUs: this process used 3.6 CPU-s of the 3.8 spent: 0.1 core was someone else's
    assert free_cores(before, CpuReading(12.0, 103.8, 43.6), 2) == pytest.approx(1.9)
    # a busy loop beside one thread of ours: one core is taken
    assert free_cores(before, CpuReading(12.0, 104.0, 42.0), 2) == pytest.approx(1.0)
    assert threads_for(free_cores(before, CpuReading(12.0, 104.0, 42.0), 2), 2) == 1


def test_inference_threads_follow_the_free_cores_and_give_the_count_back(monkeypatch):
    """Inside the loop the count is what the free cores allow; after it, the process's own."""
    import sert.runtime as runtime

    base = torch.get_num_threads()
    monkeypatch.setenv("SERT_INFERENCE_THREADS", "auto")
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 2)
    readings = iter([CpuReading(0.0, 0.0, 0.0), CpuReading(1.0, 2.0, 2.0),   # quiet: both cores ours
                     CpuReading(2.0, 4.0, 3.0)])                              # another job took a core
    monkeypatch.setattr(runtime, "cpu_reading", lambda: next(readings))
    counts = []
    governor = InferenceThreads(interval=0.5)
    governor.clock = iter([1.0, 2.0]).__next__
    with governor as threads:
        threads.tick()
        counts.append(torch.get_num_threads())
        with governor:  # a nested block neither takes the chosen count for the process's own
            pass
        counts.append(torch.get_num_threads())
        threads.tick()
        counts.append(torch.get_num_threads())
    assert counts == [2, 2, 1]
    assert torch.get_num_threads() == base
    monkeypatch.setenv("SERT_INFERENCE_THREADS", "fixed")
    with InferenceThreads(interval=0.0) as threads:
        threads.tick()
        assert torch.get_num_threads() == base


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ",2"])
def test_nonsense_thread_counts_are_one_line_errors(value):
    with pytest.raises(ParamsError, match=f"OMP_NUM_THREADS='{value}': must be a positive whole number"):
        check_thread_policy({"OMP_NUM_THREADS": value})


def test_wait_policy_is_checked_and_too_many_threads_warn():
    with pytest.raises(ParamsError, match="OMP_WAIT_POLICY='sleepy': must be ACTIVE or PASSIVE"):
        check_thread_policy({"OMP_WAIT_POLICY": "sleepy"})
    assert check_thread_policy({"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive"}) is None
    assert check_thread_policy({"OMP_NUM_THREADS": "1,1"}) is None  # OpenMP's per-level list
    with pytest.raises(ParamsError, match="SERT_INFERENCE_THREADS='2': must be auto or fixed"):
        check_thread_policy({"SERT_INFERENCE_THREADS": "2"})
    warning = check_thread_policy({"OMP_NUM_THREADS": str(usable_cpus() + 1)})
    assert warning is not None and f"more than the {usable_cpus()} CPUs" in warning


def run_sert(env_update: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "KMP_", "SERT_INFERENCE"))}
    env.update(env_update)
    return subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_sert_command_applies_the_policy_before_torch_loads():
    """A stage's torch runs with the policy's thread count, and the user's own value wins."""
    first = "from stages import cli; import os, torch; print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "KMP_", "SERT_INFERENCE"))}
    out = subprocess.run([sys.executable, "-c", first], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(DEFAULT_THREADS), DEFAULT_WAIT_POLICY]
    if usable_cpus() >= 2:
        out = subprocess.run([sys.executable, "-c", first], cwd=ROOT, env={**env, "OMP_NUM_THREADS": "2"},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["2", DEFAULT_WAIT_POLICY]


def test_bad_thread_settings_stop_a_stage_with_one_line_and_nothing_written(tmp_path):
    out = run_sert({"OMP_NUM_THREADS": "0"}, "prepare", "--help")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: OMP_NUM_THREADS='0': must be a positive whole number of threads (unset it for the default, "
        f"{DEFAULT_THREADS})"]
    assert run_sert({"OMP_NUM_THREADS": "0"}, "tasks").returncode == 0  # commands that run no torch: no check
    out = run_sert({"OMP_NUM_THREADS": str(usable_cpus() + 1)}, "prepare", "--help")
    assert out.returncode == 0 and "warning: OMP_NUM_THREADS=" in out.stderr


def test_precision_auto_is_bf16_only_where_native(capsys):
    cpu = torch.device("cpu")
    native = native_bf16(cpu)
    assert native == (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    assert resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu, "sample") == "bf16"
    assert resolve_precision("bf16", cpu, "sample") == "bf16"
    err = capsys.readouterr().err
    if native:
        assert err == ""
    else:  # works, slowly, and says so once per section
        assert err.count("warning: sample.precision: bf16 on a cpu without native bf16") == 1
