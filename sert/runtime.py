"""How torch uses this machine: the OpenMP thread policy and the precision bf16 runs in.

Thread policy. OpenMP reads its settings once, when torch loads it, so
:func:`apply_thread_policy` must run before anything imports torch: the ``sert`` command
(``stages/cli.py``), the test suite (``tests/conftest.py``) and the benchmarks call it first
thing. It only fills in what the environment leaves unset: a user's own ``OMP_NUM_THREADS`` or
``OMP_WAIT_POLICY`` always wins. The defaults come from ``benchmarks/threads.py`` (table in
``benchmarks/README.md``): on a 2-core box two spinning threads are the fastest while the cores
are free and collapse the moment another CPU-bound job runs (a thread spins at a barrier waiting
for its partner, which the scheduler has descheduled), while one thread is within a small factor
of two when the box is quiet and unaffected by load.

One thread, by default everywhere. The thread count changes float results (reduction order: a
[36 x 1,024] x [1,024 x 256] fp32 matmul already differs in its last bits between one thread and
two, and sampling turns that into other texts), so a fixed count, not one chosen from the load,
keeps a rerun's numbers the same on a busy and on a quiet machine.

The other cores go to the decode loops (sampling and greedy evaluation), as workers: each
decodes a batch of its own on its own thread, with the process's one OpenMP thread
(:func:`decode_workers`, sert/workers.py). The workers never change a result (each batch runs the
same kernels as it would alone), and never wait for each other inside an op, so another job on
the machine slows them without the spinning collapse. Training keeps one batch and the process's
thread count.

This module imports no torch at module level, so that applying the policy cannot start OpenMP.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass

from sert.errors import ParamsError

DEFAULT_THREADS = 1
"""``OMP_NUM_THREADS`` when the environment leaves it unset (see the module docstring)."""
DEFAULT_WAIT_POLICY = "PASSIVE"
"""``OMP_WAIT_POLICY`` when unset: an idle OpenMP thread sleeps instead of spinning, so a thread
that waits never burns the core another process (or its own partner thread) needs."""
WAIT_POLICIES = ("ACTIVE", "PASSIVE")
DECODE_WORKERS = "SERT_DECODE_WORKERS"
"""Environment variable: batches decoded at once (:func:`decode_workers`); unset: one per usable CPU."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadPolicy:
    """The policy in effect, and where each value came from."""

    threads: str
    """``OMP_NUM_THREADS`` as set (the environment's value, or the default)."""
    wait_policy: str
    """``OMP_WAIT_POLICY`` as set."""
    from_user: tuple[str, ...]
    """The variables that the user's environment set (and that the policy therefore left alone)."""


def apply_thread_policy(environ: dict | None = None) -> ThreadPolicy:
    """Fill in ``OMP_NUM_THREADS`` and ``OMP_WAIT_POLICY`` where ``environ`` (default: this
    process's environment, which child processes inherit) leaves them unset. Never raises: a bad
    value of the user's is reported by :func:`check_thread_policy`, which callers run where they
    can print a one-line error."""
    env = os.environ if environ is None else environ
    from_user = tuple(name for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY") if env.get(name))
    if environ is None and "torch" in sys.modules and not from_user:
        # Too late for the OpenMP runtime of this process; still right for its children.
        warnings.warn("sert.runtime.apply_thread_policy: torch was imported first, so this process keeps "
                      "torch's own thread settings", RuntimeWarning, stacklevel=2)
    if not env.get("OMP_NUM_THREADS"):
        env["OMP_NUM_THREADS"] = str(DEFAULT_THREADS)
    if not env.get("OMP_WAIT_POLICY"):
        env["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
    return ThreadPolicy(env["OMP_NUM_THREADS"], env["OMP_WAIT_POLICY"], from_user)


def check_thread_policy(environ: dict | None = None) -> str | None:
    """Raise :class:`ParamsError` (one line) for thread settings that make no sense; return a warning
    for ones that work but cost time (more threads than usable CPUs), else None."""
    env = os.environ if environ is None else environ
    raw = env.get("OMP_NUM_THREADS", "")
    # OpenMP accepts a comma-separated list (one count per nesting level); torch uses the first.
    first = raw.split(",")[0].strip()
    if raw and (not first.isdigit() or int(first) < 1):
        raise ParamsError(f"OMP_NUM_THREADS={raw!r}: must be a positive whole number of threads "
                          f"(unset it for the default, {DEFAULT_THREADS})")
    policy = env.get("OMP_WAIT_POLICY", "")
    if policy and policy.strip().upper() not in WAIT_POLICIES:
        raise ParamsError(f"OMP_WAIT_POLICY={policy!r}: must be ACTIVE or PASSIVE "
                          f"(unset it for the default, {DEFAULT_WAIT_POLICY})")
    workers = decode_workers("cpu", env)
    cpus = usable_cpus()
    if raw and int(first) > cpus:
        return (f"OMP_NUM_THREADS={first} is more than the {cpus} CPUs this process may use: threads will "
                f"wait for each other at every parallel op; {min(cpus, DEFAULT_THREADS)} is the default")
    if env.get(DECODE_WORKERS) and workers * int(first or DEFAULT_THREADS) > cpus:
        return (f"{DECODE_WORKERS}={workers} x {first or DEFAULT_THREADS} OpenMP thread(s) each is more than the "
                f"{cpus} CPUs this process may use: workers will take turns, each holding its batch's memory")
    return None


# -- decode workers -----------------------------------------------------------------------------------
def decode_workers(device_type: str, environ: dict | None = None) -> int:
    """How many batches the decode loops (sampling, greedy evaluation) run at once, each on a thread
    of its own (sert/workers.py): ``SERT_DECODE_WORKERS`` when set, else on a CPU the usable CPUs
    divided by the OpenMP threads each worker runs (``OMP_NUM_THREADS``, one by default), at least
    one. One on a GPU (one device: its batches queue anyway). The count never changes a result."""
    env = os.environ if environ is None else environ
    raw = env.get(DECODE_WORKERS, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ParamsError(f"{DECODE_WORKERS}={raw!r}: must be a positive whole number of batches decoded at "
                              "once (unset it for the default: one per usable CPU)")
        return int(raw)
    if device_type != "cpu":
        return 1
    threads = env.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    per_worker = int(threads) if threads.isdigit() and int(threads) > 0 else 1
    return max(1, usable_cpus() // per_worker)


# -- precision -------------------------------------------------------------------------------------
def native_bf16(device) -> bool:
    """Whether ``device`` (a ``torch.device``) computes bf16 matmuls in hardware: a CUDA GPU that
    supports bf16, or a CPU with AMX tiles or AVX-512-BF16 (oneDNN's bf16 kernels). Elsewhere torch
    emulates bf16 through fp32 and is several times slower than fp32 itself."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        # Private in torch 2.x but stable since 2.3; a torch without them gets the safe answer.
        checks = (getattr(cpu, "_is_amx_tile_supported", None), getattr(cpu, "_is_avx512_bf16_supported", None))
        return any(check is not None and check() for check in checks)
    return False


_warned: set[str] = set()


def resolve_precision(precision: str, device, section: str = "train") -> str:
    """``auto`` -> ``bf16`` where ``device`` computes it natively (:func:`native_bf16`), else
    ``fp32``. ``bf16`` asked for on a device without native bf16 still runs (emulated, slower than
    fp32), with one warning per process and params section."""
    native = native_bf16(device)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native and section not in _warned:
        _warned.add(section)
        print(f"warning: {section}.precision: bf16 on a {device.type} without native bf16 (AMX, AVX-512-BF16 "
              f"or a bf16 GPU) runs emulated, several times slower than fp32", file=sys.stderr)
    return precision
