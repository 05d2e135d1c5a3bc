"""One writer per run directory: an exclusive lock that search, train, run and sweep hold.

The lock is ``fcntl.flock`` on ``<run dir>/.quantnas-lock``, a file that holds the pid,
command and start time of its holder. A second writer (a second search into the same
folder, a ``--resume`` while the first process still runs) is refused with one line
naming the holder's pid. The kernel drops the lock when its process ends, however it
ends, so the lock file of a killed process is simply taken over. The file is removed when
the lock is released. Where ``fcntl`` does not exist (Windows) runs are not locked.

Every writer of a run directory holds its lock through :func:`hold`: the verbs, the
library's :class:`~quantnas.training.loop.EpochLoop` runs (``Searcher``, ``Trainer``),
:func:`~quantnas.pipeline.run.run_pipeline` and each sweep trial, in whatever process it runs.
Within one process :func:`hold` is reentrant (the ``search`` verb and the ``Searcher`` it
starts share one lock); a second process is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from quantnas.errors import QuantNASError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "Hold", "RunLock", "drop_stale", "hold", "holder", "holding"]

log = logging.getLogger(__name__)

#: The lock file inside a run directory (removed again when the run ends).
LOCK_FILE = ".quantnas-lock"


def holder(path: str | Path) -> dict:
    """What a lock file says about its holder (``{}`` when it is empty or unreadable)."""
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(4096))  # a holder writes ~100 bytes; never more read
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RunLock:
    """Exclusive lock on a run directory, held from :meth:`acquire` to :meth:`release`.

    Use it as a context manager; it is released on exit, exceptions included. The
    directory is created if missing, and removed again on release when the lock was all
    that was ever put in it.

    Args:
        run_dir: The run directory.
        command: What the holder runs (``search``, ``sweep``, ...), written for others.

    """

    def __init__(self, run_dir: str | Path, *, command: str) -> None:
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK_FILE
        self.command = command
        self._fd: int | None = None
        self._made_dir = False

    def acquire(self) -> RunLock:
        """Take the lock (a stale lock file of a dead process is taken over).

        Raises:
            QuantNASError: Another process holds the lock (naming its pid).

        """
        if fcntl is None:  # pragma: no cover - Windows
            return self
        self._made_dir = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        while self._fd is None:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._busy() from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder released and removed it meanwhile: lock the new one
                os.close(fd)
                continue
            self._fd = fd
        stale = holder(self.path)
        if stale.get("pid") not in (None, os.getpid()):
            log.info("taking over the lock of process %s, which ended", stale["pid"])
        me = {"pid": os.getpid(), "command": self.command, "since": time.strftime("%FT%T%z")}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(me).encode("utf-8"), 0)
        return self

    def _open(self) -> int:
        """Open (or create) the lock file itself, never a file a link points to."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            if not self.path.is_symlink() and not self.path.is_dir():
                raise
            raise QuantNASError(
                f"{self.path} is a {'symbolic link' if self.path.is_symlink() else 'folder'}, "
                "not the lock file quantnas writes; remove it, then run the command again"
            ) from e
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise QuantNASError(f"{self.path} is not a regular file; remove it, then run again")
        return fd

    def _busy(self) -> QuantNASError:
        info = holder(self.path)
        who = f"process {info['pid']}" if "pid" in info else "another process"
        if "command" in info:
            who += f" (quantnas {info['command']} since {info.get('since', '?')})"
        return QuantNASError(
            f"run directory {self.dir} is in use by {who}; wait for it to end or stop it, "
            "then run the command again"
        )

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        if self._made_dir:
            with contextlib.suppress(OSError):
                self.dir.rmdir()  # only succeeds when nothing was written into it

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


#: The locks this process holds through :func:`hold`: real path -> [lock, holders].
_held: dict[str, list] = {}


class Hold:
    """One holder's share of a lock taken with :func:`hold`; :meth:`release` gives it back."""

    def __init__(self, key: str) -> None:
        self._key: str | None = key

    def release(self) -> None:
        """Give back this share (idempotent); the last share releases the lock."""
        key, self._key = self._key, None
        if key is None or key not in _held:
            return
        entry = _held[key]
        entry[1] -= 1
        if entry[1] <= 0:
            del _held[key]
            entry[0].release()


def hold(run_dir: str | Path, *, command: str) -> Hold:
    """Hold the lock of ``run_dir`` for this process (reentrant within the process).

    Raises:
        QuantNASError: Another process holds it (naming its pid).

    """
    key = os.path.realpath(run_dir)
    if key in _held:
        _held[key][1] += 1
    else:
        _held[key] = [RunLock(run_dir, command=command).acquire(), 1]
    return Hold(key)


@contextlib.contextmanager
def holding(run_dir: str | Path, *, command: str) -> Iterator[None]:
    """:func:`hold` for the duration of a ``with`` block."""
    share = hold(run_dir, command=command)
    try:
        yield
    finally:
        share.release()


def drop_stale(folder: str | Path) -> None:
    """Remove the lock file in ``folder`` if no process holds it (a killed holder's)."""
    path = Path(folder) / LOCK_FILE
    if fcntl is None or not path.is_file() or os.path.realpath(folder) in _held:
        return
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink()
    except OSError:
        pass  # held by a live process (or already gone): kept
    finally:
        os.close(fd)
