"""Independent batches decoded at once, each on a thread of its own with the process's OpenMP
threads (one by default): how sampling and greedy evaluation use a CPU's cores.

Why threads over batches, not more OpenMP threads inside one batch:

- Results. A batch's kernels see the same shapes and the same thread count however many
  batches run beside it, so every batch computes what it computes alone, bit for bit; the
  number of workers never changes a sample, a perplexity or a greedy answer. More OpenMP
  threads inside a batch do change them: oneDNN picks other blockings for another thread
  count (GPT-2-small's first projection on 200 decode rows differs in the last bit of bf16
  between one thread and two), and sampling turns a last bit into another text.
- Speed. Torch drops the GIL inside its kernels, and a decode step is ~99% kernels, so two
  workers decode about twice as fast as one on two free cores: SmolLM2 on 32 real StrategyQA
  questions 1,220 tok/s against 643 (two OpenMP threads in one batch: about 1,080).
- Load. Workers never wait for each other inside an op, so another CPU-bound job slows them
  down without the collapse of OpenMP threads spinning at a barrier for a descheduled partner:
  beside one busy loop on a 2-core box, two workers 837 tok/s, one 657.

The price is memory: every running batch holds its own KV cache. ``SERT_DECODE_WORKERS``
(sert/runtime.py) sets the count; benchmarks/README.md has the measurements.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_local = threading.local()


class Cancelled(Exception):
    """A worker stopped at a cancellation point because another one failed or the caller stopped."""


def cancellation_point() -> None:
    """Raise :class:`Cancelled` if this thread is a worker of :func:`ordered_map` that has been told
    to stop; decode loops call it once a step, so that an error or Ctrl-C ends every worker within
    a step instead of after its whole batch. Does nothing outside a worker."""
    stop = getattr(_local, "stop", None)
    if stop is not None and stop.is_set():
        raise Cancelled


def ordered_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``fn(item)`` for every item, ``workers`` at a time on threads, yielded in the order of
    ``items`` (a later item may finish first; it waits). With one worker, or one item, it runs in
    the calling thread. An exception in a worker, or the caller leaving early (an exception,
    Ctrl-C, closing the generator), stops the other workers at their next
    :func:`cancellation_point` and waits for them, so that no thread outlives the call."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    stop = threading.Event()

    def run(item: T) -> R:
        _local.stop = stop
        try:
            cancellation_point()  # queued behind a failure: do not start
            return fn(item)
        finally:
            _local.stop = None

    pool = ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="sert-decode")
    futures = [pool.submit(run, item) for item in items]
    pending = set(futures)
    try:
        for future in futures:
            while not future.done():  # a failure anywhere ends the wait, not only the next item's
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for other in finished:
                    if other.exception() is not None:
                        raise other.exception()
            yield future.result()
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
