"""The thread policy (set before torch loads OpenMP; the user's environment wins; bad values get a
one-line error) and precision resolution (bf16 only where the device computes it natively)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sert.errors import ParamsError
from sert.runtime import (DEFAULT_THREADS, DEFAULT_WAIT_POLICY, apply_thread_policy, check_thread_policy,
                          native_bf16, resolve_precision, usable_cpus)

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


def test_decode_workers_default_to_the_cores_each_worker_leaves(monkeypatch):
    """One worker per usable CPU, divided by each worker's OpenMP threads; the variable wins; a GPU gets one."""
    import sert.runtime as runtime
    from sert.runtime import decode_workers

    monkeypatch.setattr(runtime, "usable_cpus", lambda: 4)
    assert decode_workers("cpu", {}) == 4
    assert decode_workers("cpu", {"OMP_NUM_THREADS": "2"}) == 2
    assert decode_workers("cpu", {"OMP_NUM_THREADS": "8"}) == 1
    assert decode_workers("cuda", {}) == 1
    assert decode_workers("cpu", {"SERT_DECODE_WORKERS": "3"}) == 3
    assert decode_workers("cuda", {"SERT_DECODE_WORKERS": "2"}) == 2


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ",2"])
def test_nonsense_thread_counts_are_one_line_errors(value):
    with pytest.raises(ParamsError, match=f"OMP_NUM_THREADS='{value}': must be a positive whole number"):
        check_thread_policy({"OMP_NUM_THREADS": value})


def test_wait_policy_is_checked_and_too_many_threads_warn():
    with pytest.raises(ParamsError, match="OMP_WAIT_POLICY='sleepy': must be ACTIVE or PASSIVE"):
        check_thread_policy({"OMP_WAIT_POLICY": "sleepy"})
    assert check_thread_policy({"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive"}) is None
    assert check_thread_policy({"OMP_NUM_THREADS": "1,1"}) is None  # OpenMP's per-level list
    for value in ("0", "auto", "-2", "1.5"):
        with pytest.raises(ParamsError, match=f"SERT_DECODE_WORKERS='{value}': must be a positive whole number"):
            check_thread_policy({"SERT_DECODE_WORKERS": value})
    assert check_thread_policy({"SERT_DECODE_WORKERS": "1"}) is None
    warning = check_thread_policy({"SERT_DECODE_WORKERS": str(usable_cpus() + 1)})
    assert warning is not None and "workers will take turns" in warning
    warning = check_thread_policy({"OMP_NUM_THREADS": str(usable_cpus() + 1)})
    assert warning is not None and f"more than the {usable_cpus()} CPUs" in warning


def run_sert(env_update: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "KMP_", "SERT_DECODE"))}
    env.update(env_update)
    return subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_sert_command_applies_the_policy_before_torch_loads():
    """A stage's torch runs with the policy's thread count, and the user's own value wins."""
    first = "from stages import cli; import os, torch; print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "KMP_", "SERT_DECODE"))}
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
    out = run_sert({"SERT_DECODE_WORKERS": "auto"}, "sample", "--help")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: SERT_DECODE_WORKERS='auto': must be a positive whole number of batches decoded at once (unset it "
        "for the default: one per usable CPU)"]
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
