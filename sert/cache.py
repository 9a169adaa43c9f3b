"""The API response cache: one SQLite store per cache name, shared by every workspace of a repository.

Where it lives (``cache_dir``): ``$SERT_CACHE_DIR`` when set (a path a user can point anywhere);
else ``<git common directory>/sert-cache`` of the repository the stage runs for. DVC sets
``DVC_ROOT`` for every stage command, and for ``dvc exp run --temp`` and queued experiments it is
the original repository, not the executor's copy under ``.dvc/tmp/exps/`` (whose own git directory
is a fresh one); git worktrees share their common directory. So the main workspace, temporary and
queued experiments and a second worktree all find the same store. Outside git: ``<root>/.sert-cache``.

Why SQLite (stdlib): several processes (``dvc queue start -j 2``) write one store at once. In WAL
mode a writer appends to the log while readers keep reading; each response is one transaction, so a
reader sees a whole response or none, and a process killed mid-write leaves the store as it was
before that write. A second table holds *claims*: a worker about to send a request records
(key, host, pid, expiry) first, so another worker that needs the same request waits for its answer
instead of paying for it too. A claim is taken over when its owner is a dead process on this host,
or when its lease expires (owners on other hosts, a pid reused by an unrelated process).

WAL needs every process that opens the store on one host (it uses shared memory); machines share
responses with ``export`` / ``merge`` (JSONL: ``{"key", "endpoint", "request", "response"}``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sert.errors import DataError

CACHE_DIR_ENV = "SERT_CACHE_DIR"
"""Environment variable naming the cache directory; it wins over the repository's."""
WORKSPACE_CACHE = ".sert-cache"
"""The cache directory's name outside git, and the prefix a relative ``api.cache`` may carry."""
HOST = socket.gethostname()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, endpoint TEXT NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, token TEXT NOT NULL,
    claimed REAL NOT NULL, expires REAL NOT NULL);
"""


def _git_common_dir(root: Path) -> Path | None:
    """The git common directory of the repository at ``root`` (a worktree's is its main
    repository's), or None outside git or without a git binary."""
    try:
        out = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=root, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return (root / out.stdout.strip()).resolve()


def cache_dir(environ: dict[str, str] | None = None, cwd: str | os.PathLike | None = None) -> Path:
    """The directory of the response caches (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_DIR_ENV, "").strip():
        return Path(env[CACHE_DIR_ENV].strip()).expanduser().resolve()
    root = Path(env.get("DVC_ROOT") or cwd or os.getcwd()).resolve()
    common = _git_common_dir(root)
    return common / "sert-cache" if common is not None else root / WORKSPACE_CACHE


def store_path(name: str, directory: Path | None = None) -> Path:
    """The store file for ``api.cache`` value ``name``: an absolute path as is; a relative one inside
    the cache directory (a leading ``.sert-cache/`` names that directory too)."""
    path = Path(name).expanduser()
    if path.is_absolute():
        return path
    if path.parts and path.parts[0] == WORKSPACE_CACHE:
        path = Path(*path.parts[1:])
    return (directory if directory is not None else cache_dir()) / path


def read_export(text: str, source: str = "export", skip_invalid: bool = False) -> tuple[list[dict], int]:
    """The records of an ``export`` (JSONL) and how many lines were skipped: a line that is not a
    record is a ``DataError`` naming it, or with ``skip_invalid`` skipped (a line a kill cut short)."""
    records, skipped = [], 0
    # split on "\n" only: str.splitlines() also breaks on U+2028, U+0085 and more inside a response
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not {"key", "endpoint", "request", "response"} <= set(record):
                raise ValueError("needs key, endpoint, request and response")
        except ValueError as err:
            if skip_invalid:
                skipped += 1
                continue
            raise DataError(f"{source}:{n}: not a cache record ({err}); --skip-invalid skips such lines") from None
        records.append(record)
    return records, skipped


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a zombie still answers kill(0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class ResponseCache:
    """A SQLite store of responses keyed by request key, with in-flight claims; thread-safe.

    One connection per instance, used under a lock (SQLite serialises writers anyway; the requests
    themselves, which take the time, run outside it)."""

    def __init__(self, path: str | os.PathLike, poll: float = 0.05) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # private: the store holds prompts and responses (never the key)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.poll = poll
        self._token = uuid.uuid4().hex  # this instance's claims
        self._lock = threading.Lock()
        # isolation_level=None: no implicit transactions; every write below is an explicit
        # BEGIN IMMEDIATE .. COMMIT. timeout: wait this long for another process's write lock.
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        for attempt in range(50):  # switching to WAL needs a moment alone with the file
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
            except sqlite3.DatabaseError:  # "file is not a database"
                self._db.close()
                raise DataError(f"{self.path}: not a SQLite response store (a JSONL cache file? name another "
                                f"store and merge this one into it: sert cache import <store> {self.path})") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def _stale(self, host: str, pid: int, token: str, expires: float) -> bool:
        if expires < time.time():
            return True
        # This host's dead owner: its request will never be answered. (Another host's owner is
        # waited for until its lease ends; a live pid on this host too: it may be a reused pid.)
        return host == HOST and token != self._token and not pid_alive(pid)

    def claim(self, key: str, lease: float) -> dict | None:
        """The cached response for ``key``, waiting while another live worker has it in flight;
        or None, and the caller now holds the claim: it sends the request, then ``put`` (or
        ``release`` on failure). ``lease``: seconds the claim holds without a ``refresh``."""
        wait = self.poll
        while True:
            with self._write() as db:
                row = db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
                if row:
                    return json.loads(row[0])
                owner = db.execute("SELECT host, pid, token, expires FROM claims WHERE key = ?", (key,)).fetchone()
                if owner is None or self._stale(*owner):
                    now = time.time()
                    db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                               (key, HOST, os.getpid(), self._token, now, now + lease))
                    return None
            time.sleep(wait)
            wait = min(wait * 1.5, 0.5)

    def refresh(self, key: str, lease: float) -> None:
        """Extend this instance's claim on ``key`` (before each attempt and each long wait)."""
        with self._write() as db:
            db.execute("UPDATE claims SET expires = ? WHERE key = ? AND token = ?", (time.time() + lease, key, self._token))

    def release(self, key: str) -> None:
        """Drop this instance's claim on ``key`` without an answer (a waiting worker then sends it)."""
        with self._write() as db:
            db.execute("DELETE FROM claims WHERE key = ? AND token = ?", (key, self._token))

    def put(self, key: str, endpoint: str, body: dict, response: dict) -> None:
        """Store a response and drop this instance's claim, in one transaction. The first answer
        stored for a key stays (a worker whose claim was taken over may answer it too)."""
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?)",
                       (key, endpoint, json.dumps(body, ensure_ascii=False, sort_keys=True),
                        json.dumps(response, ensure_ascii=False), time.time()))
            db.execute("DELETE FROM claims WHERE key = ? AND token = ?", (key, self._token))

    def merge(self, records: Iterable[dict]) -> tuple[int, int]:
        """Add ``{"key", "endpoint", "request", "response"}`` records (``export``'s lines, or an
        older JSONL cache); keys already here are kept. Returns (added, already present)."""
        added = present = 0
        with self._write() as db:
            for r in records:
                cur = db.execute("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?)",
                                 (r["key"], r["endpoint"], json.dumps(r["request"], ensure_ascii=False, sort_keys=True),
                                  json.dumps(r["response"], ensure_ascii=False), time.time()))
                added += cur.rowcount
                present += 1 - cur.rowcount
        return added, present

    def export(self, out: IO[str]) -> int:
        """Write every response as one JSONL line (``merge`` reads them back); returns the count."""
        with self._lock:
            rows = self._db.execute("SELECT key, endpoint, request, response FROM responses ORDER BY key").fetchall()
        for key, endpoint, request, response in rows:
            # ASCII JSON: a response's U+2028 or U+0085 must not read as a line break anywhere
            out.write(json.dumps({"key": key, "endpoint": endpoint, "request": json.loads(request),
                                  "response": json.loads(response)}) + "\n")
        return len(rows)

    def info(self) -> dict[str, Any]:
        """Entry and claim counts and the result of SQLite's integrity check."""
        with self._lock:
            entries = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            claims = self._db.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
            check = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        return {"entries": entries, "claims": claims, "integrity": check}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
