"""One writer per run directory: an advisory lock on DIR/.lock, held while a process writes there.

Two `train.py` processes in one directory would interleave checkpoints, and the
second would delete the first's temporary files as leftovers of a killed run.
The lock is `flock` on an open file: the kernel releases it when the process
exits for any reason (kill -9 included), so a stale lock cannot outlive its
process and nothing needs cleaning up. The file keeps the holder's pid and
host, for the error message. Local file systems; on a network file system
flock may be advisory per host only.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from vae_jax.errors import UserError

LOCK_NAME = ".lock"


class RunLock:
  """Holds DIR/.lock until `release()` (or the process ends)."""

  def __init__(self, fd: int, path: Path):
    self._fd: int | None = fd
    self.path = path

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing the descriptor drops the flock
      self._fd = None


def holder(directory: Path) -> str:
  """'pid N on HOST' from the lock file, or 'another process' if it says nothing readable."""
  try:
    pid, host = (directory / LOCK_NAME).read_text().split()[:2]
    return f"pid {int(pid)} on {host}"
  except (OSError, ValueError):
    return "another process"


def acquire(directory: str | os.PathLike) -> RunLock:
  """The lock of an existing `directory`; UserError naming the holder if a live process has it."""
  directory = Path(directory)
  path = directory / LOCK_NAME
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    raise UserError(f"{directory} is in use by {holder(directory)}; wait for it to finish or stop it, "
                    "then run this command again (nothing was changed)") from None
  except BaseException:
    os.close(fd)
    raise
  os.ftruncate(fd, 0)
  os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
  return RunLock(fd, path)


def is_locked(directory: str | os.PathLike) -> bool:
  """Whether a live process holds `directory`'s lock (False when there is no lock file)."""
  path = Path(directory) / LOCK_NAME
  if not path.exists():
    return False
  fd = os.open(path, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except BlockingIOError:
    return True
  finally:
    os.close(fd)
  return False
