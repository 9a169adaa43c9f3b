"""The `sert` command, run as one process of a multi-process launch, recording what this process did.

tests/test_multiprocess.py starts it with torchrun in place of `sert` (``torchrun ...
tests/rank_probe.py train finetune``). It runs the real command (``stages.cli.app``) and writes,
under ``$SERT_PROBE_DIR``:

- ``rank<R>.safetensors``: the weights this process's training ended with. Only rank 0 saves the
  stage's model, so this is the one way to see that the other ranks ended with the same weights.
- ``rank<R>.writes``: every path under the working directory (the project) that this process
  created, opened for writing, renamed or removed, one per line, from Python's audit events
  (``sys.addaudithook``). Files written from native code (safetensors, tokenizers) are written
  into a directory that ``atomic_path`` makes with ``tempfile.mkdtemp`` and renames into place, so
  those show up too.

Only ``train finetune`` is recorded (the stage wraps ``train_on_texts``, which returns the model).
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

import stages.cli  # first: it applies the thread policy before anything imports torch

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
PATH_EVENTS = {"os.mkdir": (0, 2), "os.remove": (0, 1), "os.rmdir": (0, 1), "shutil.rmtree": (0, 1),
               "os.truncate": (0, None), "tempfile.mkdtemp": (0, None), "tempfile.mkstemp": (0, None),
               "os.rename": (1, 3), "os.link": (1, 3), "os.symlink": (1, 2)}
"""Audit events that change the file system: the index of the argument naming the path changed
(``os.rename``, which ``os.replace`` raises too: the destination) and of the directory descriptor
a relative path is relative to (``shutil.rmtree`` removes by descriptor), if the event has one."""


def main() -> None:
    probe = Path(os.environ["SERT_PROBE_DIR"])
    rank = int(os.environ["RANK"])
    project = Path.cwd().resolve()
    writes: set[str] = set()

    def record(path, dir_fd=None) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            # (a dir_fd of -1 or AT_FDCWD, -100: none)
            start = os.readlink(f"/proc/self/fd/{dir_fd}") if isinstance(dir_fd, int) and dir_fd >= 0 else os.getcwd()
            full = Path(os.path.abspath(os.path.join(start, os.fsdecode(path))))
            if full.is_relative_to(project) and "__pycache__" not in full.parts:
                writes.add(str(full.relative_to(project)))

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE_FLAGS):
                record(path)
        elif event in PATH_EVENTS:
            path, dir_fd = PATH_EVENTS[event]
            record(args[path], None if dir_fd is None else args[dir_fd])

    def report() -> None:
        (probe / f"rank{rank}.writes").write_text("".join(f"{w}\n" for w in sorted(writes)))

    import stages.train
    from safetensors.torch import save_file

    train_on_texts = stages.train.train_on_texts

    def recording(*args, **kwargs):
        model, *rest = train_on_texts(*args, **kwargs)
        # clone: the tied input/output embeddings share memory, which save_file refuses
        save_file({k: v.detach().clone() for k, v in model.state_dict().items()}, probe / f"rank{rank}.safetensors")
        return (model, *rest)

    stages.train.train_on_texts = recording
    atexit.register(report)
    sys.addaudithook(hook)
    stages.cli.app()


if __name__ == "__main__":
    main()
