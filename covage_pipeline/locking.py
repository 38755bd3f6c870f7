"""One writer at a time: `covage ingest` and `covage build` wait for each other instead of failing.

DuckDB lets one process write a file; a second writer fails at once on its lock ("Could not set
lock on file"). Our own commands take an advisory lock in the data dir first (so a waiter can say
which command holds it), and a lock held by any other program (a notebook, a SQL client) is
recognised in the error and waited for as well, up to `COVAGE_LOCK_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .settings import Settings

_DUCKDB_LOCK = re.compile(r"Could not set lock on file")
_LOCK_PID = re.compile(r"Conflicting lock is held in .*?\(PID (\d+)\)")


class WarehouseBusy(RuntimeError):
    """Another process kept the warehouse for longer than the settings allow to wait."""


def lock_path(settings: Settings) -> Path:
    return settings.data_dir / ".covage-writer.lock"


def describe_process(pid: int | None) -> str:
    """`PID 123: covage ingest`, as far as this machine says."""
    if pid is None:
        return "another process"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        words = [Path(a.decode()).name if i == 0 else a.decode() for i, a in enumerate(argv) if a][:4]
        return f"PID {pid}: {' '.join(words)}"
    except OSError:
        return f"PID {pid}"


def duckdb_lock_holder(error: BaseException | str) -> str | None:
    """Who holds the DuckDB file, when `error` is DuckDB refusing its lock; else None."""
    text = str(error)
    if _DUCKDB_LOCK.search(text) is None:
        return None
    pid = _LOCK_PID.search(text)
    return describe_process(int(pid.group(1)) if pid else None)


@contextmanager
def writer_lock(settings: Settings, command: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Holds the data dir's writer lock for `command`; waits for it up to `lock_timeout_s`."""
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + settings.lock_timeout_s
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another covage command"
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(
                        f"The warehouse in {settings.data_dir} is still in use by {holder} after "
                        f"{settings.lock_timeout_s:g} s (COVAGE_LOCK_TIMEOUT_SECONDS). Run {command} again once it "
                        "has finished."
                    ) from None
                if on_wait is not None and not told:
                    on_wait(f"Waiting for {holder} to finish with the warehouse in {settings.data_dir}...")
                    told = True
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()}: {command}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def retry_while_locked(
    attempt: Callable[[], object],
    failure: Callable[[BaseException], BaseException | None],
    settings: Settings,
    on_wait: Callable[[str], None] | None = None,
):
    """Runs `attempt` again while it fails because another program holds the DuckDB file.

    `failure(exc)` is the error to inspect for DuckDB's lock message (None: not that kind)."""
    deadline = time.monotonic() + settings.lock_timeout_s
    told = None
    while True:
        try:
            return attempt()
        except Exception as exc:
            cause = failure(exc)
            holder = duckdb_lock_holder(cause) if cause is not None else None
            if holder is None or time.monotonic() >= deadline:
                if holder is not None:
                    raise WarehouseBusy(
                        f"The warehouse {settings.duckdb_path} is still held by {holder} after "
                        f"{settings.lock_timeout_s:g} s (COVAGE_LOCK_TIMEOUT_SECONDS): close it there (a notebook "
                        "or SQL client should read the analysts' copy instead), then try again."
                    ) from None
                raise
            if on_wait is not None and told != holder:
                on_wait(f"Waiting: {holder} holds the warehouse {settings.duckdb_path}...")
                told = holder
            time.sleep(1.0)
