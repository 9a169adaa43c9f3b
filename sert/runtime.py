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

``SERT_INFERENCE_THREADS=auto`` (opt-in) lets sampling and greedy evaluation (the decode loops of
``sert.samplers.hf``) follow the free cores instead (:class:`InferenceThreads`): as many threads
as there are free cores, re-measured every half second from ``/proc/stat``, so two threads while
the other core is idle and one the moment another job takes it; its threads spin up to about
10 ms (``GOMP_SPINCOUNT``) before they sleep. SmolLM2 then samples about 1.6x faster on a quiet
2-core box and as fast as one thread under load, but sampled texts and perplexities may
differ from a run under another load (``benchmarks/README.md``, "The vocabulary-wide step in
blocks, and threads that follow the free cores"). Training always keeps the process's count.

This module imports no torch at module level, so that applying the policy cannot start OpenMP.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass

from sert.errors import ParamsError

DEFAULT_THREADS = 1
"""``OMP_NUM_THREADS`` when the environment leaves it unset (see the module docstring)."""
DEFAULT_WAIT_POLICY = "PASSIVE"
"""``OMP_WAIT_POLICY`` when unset: an idle OpenMP thread sleeps instead of spinning, so a thread
that waits never burns the core another process (or its own partner thread) needs."""
WAIT_POLICIES = ("ACTIVE", "PASSIVE")
SPIN_COUNT = "1000000"
"""``GOMP_SPINCOUNT`` (libgomp; ``KMP_BLOCKTIME`` in ms for LLVM's OpenMP) with
``SERT_INFERENCE_THREADS=auto``: spins before an idle thread sleeps, about 10 ms (libgomp counts
about 100,000 spins a millisecond). With two threads on a quiet 2-core Xeon, SmolLM2 sampled
1,376 tok/s with this, 1,307 with a tenth of it, 1,400 spinning forever and 894 sleeping at once
(benchmarks/README.md)."""
INFERENCE_THREADS = "SERT_INFERENCE_THREADS"
"""Environment variable: ``auto`` lets :class:`InferenceThreads` follow the free cores; ``fixed``
(the default) keeps the process's thread count in the decode loops too."""


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
    if env.get(INFERENCE_THREADS) == "auto" and not env.get("OMP_WAIT_POLICY") and not env.get("GOMP_SPINCOUNT"):
        env["GOMP_SPINCOUNT"] = SPIN_COUNT
        env.setdefault("KMP_BLOCKTIME", "10")
    if not env.get("OMP_WAIT_POLICY") and not env.get("GOMP_SPINCOUNT"):
        env["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
    return ThreadPolicy(env["OMP_NUM_THREADS"], env.get("OMP_WAIT_POLICY") or f"spin {env['GOMP_SPINCOUNT']}",
                        from_user)


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
    inference = env.get(INFERENCE_THREADS, "")
    if inference and inference not in ("auto", "fixed"):
        raise ParamsError(f"{INFERENCE_THREADS}={inference!r}: must be auto or fixed (unset it for the default, fixed)")
    cpus = usable_cpus()
    if raw and int(first) > cpus:
        return (f"OMP_NUM_THREADS={first} is more than the {cpus} CPUs this process may use: threads will "
                f"wait for each other at every parallel op; {min(cpus, DEFAULT_THREADS)} is the default")
    return None


# -- inference threads that follow the free cores ----------------------------------------------------
def threads_for(free_cores: float, usable: int) -> int:
    """Threads for ``free_cores`` cores' worth of CPU time that other processes left unused: a core
    counts once it is at least three quarters free (a core shared with another job costs a decode
    step more than it gives), between 1 and ``usable``."""
    return max(1, min(usable, int(free_cores + 0.25)))


@dataclass(frozen=True)
class CpuReading:
    """One reading of where the machine's CPU time has gone (cumulative, seconds)."""

    wall: float
    busy: float
    """CPU time spent by every process on the machine (``/proc/stat``: all but idle and iowait)."""
    own: float
    """CPU time spent by this process, all its threads."""


def cpu_reading() -> CpuReading | None:
    """Now, or None where ``/proc/stat`` cannot be read (not Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
    ticks = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return CpuReading(time.monotonic(), (sum(fields) - fields[3] - fields[4]) / ticks, own.user + own.system)


def free_cores(before: CpuReading, after: CpuReading, cpus: int) -> float:
    """Cores' worth of CPU time that processes other than this one left unused between two readings."""
    wall = max(after.wall - before.wall, 1e-6)
    others = max(0.0, (after.busy - before.busy) - (after.own - before.own)) / wall
    return cpus - others


def _openmp_setter():
    """``omp_set_num_threads`` of the OpenMP runtime torch loaded (libgomp in the Linux wheels), or
    ``torch.set_num_threads`` where there is none to be found. Not torch's own setter first: it also
    resizes torch's pthreadpool and MKL's threads, and a decode loop that switched threads through
    it sampled about 17% slower afterwards (SmolLM2 on two threads: 1,150 against 1,360 tok/s,
    whether it switched from one thread or set the same two); ATen's parallel loops and oneDNN
    read the OpenMP count itself."""
    import ctypes
    import glob

    import torch

    for pattern in ("libgomp*.so*", "libiomp5*.so*", "libomp*.so*"):
        for path in sorted(glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", pattern))):
            try:
                return ctypes.CDLL(path).omp_set_num_threads  # already loaded: the same library
            except (OSError, AttributeError):
                continue
    return torch.set_num_threads


class InferenceThreads:
    """Torch threads for a decode loop, following the free cores (module docstring): enter around the
    loop, :meth:`tick` every step; on exit the process's own thread count is back, so that training
    in the same process keeps its fixed count. One instance per process (:data:`inference_threads`)
    carries its last reading from one loop to the next. Does nothing unless
    ``SERT_INFERENCE_THREADS=auto`` and ``/proc/stat`` is readable."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        """Seconds between two readings."""
        self.clock = time.monotonic
        self.reading: CpuReading | None = None
        self.threads: int | None = None
        self.base = 1
        self.enabled = False
        self._set = None
        self._depth = 0

    def __enter__(self) -> InferenceThreads:
        import torch

        self._depth += 1
        if self._depth > 1:  # inside another decode loop's block: that one chose and restores
            return self
        self.base = torch.get_num_threads()
        self.enabled = os.environ.get(INFERENCE_THREADS) == "auto" and usable_cpus() > 1
        if self.enabled:
            self._set = self._set or _openmp_setter()
            if self.reading is not None and self.threads is not None \
                    and self.clock() - self.reading.wall < 4 * self.interval:
                self._set(self.threads)  # the last loop's choice is still fresh
            else:
                self.reading, self.threads = cpu_reading(), None
        return self

    def tick(self) -> None:
        if not self.enabled or self.reading is None or self.clock() - self.reading.wall < self.interval:
            return
        import torch

        now = cpu_reading()
        if now is None:
            return
        self.threads = threads_for(free_cores(self.reading, now, os.cpu_count() or 1), usable_cpus())
        self.reading = now
        if torch.get_num_threads() != self.threads:
            self._set(self.threads)

    def __exit__(self, *exc) -> None:
        import torch

        self._depth -= 1
        if self._depth == 0 and self.enabled and torch.get_num_threads() != self.base:
            self._set(self.base)


inference_threads = InferenceThreads()
"""The process's decode loops share this one (it remembers the last reading between batches)."""


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
