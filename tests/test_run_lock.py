"""One writer per run directory: a second train.py stops with one error line and changes nothing.

The lock is held by a separate process (as a user's first train.py would hold
it) and released by the kernel when that process is killed with SIGKILL.
(That train.py resumes in a directory once its run is gone is test_cli's and test_faults' part.)
"""

import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO
from test_cli import TINY, assert_user_error, run, tree_digest
from vae_jax import run_lock
from vae_jax.errors import UserError

HOLD = ("import sys, time; from vae_jax import run_lock; run_lock.acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(120)")


@pytest.fixture
def holder(tmp_path):
  """A process holding tmp_path/run's lock; yields (workdir, process)."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  proc = subprocess.Popen([sys.executable, "-c", HOLD, str(workdir)], cwd=REPO, stdout=subprocess.PIPE, text=True)
  try:
    assert proc.stdout.readline().strip() == "held"
    yield workdir, proc
  finally:
    proc.kill()
    proc.wait()


def test_a_held_lock_names_its_holder_and_is_free_once_the_holder_is_killed(holder):
  workdir, proc = holder
  assert run_lock.is_locked(workdir)
  with pytest.raises(UserError, match=f"pid {proc.pid} on "):
    run_lock.acquire(workdir)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert not run_lock.is_locked(workdir)
  lock = run_lock.acquire(workdir)
  assert run_lock.is_locked(workdir)  # seen from another open file, as another process sees it
  lock.release()
  assert not run_lock.is_locked(workdir)


def test_train_refuses_a_directory_another_process_trains_in(holder):
  workdir, proc = holder
  (workdir / "config.json.tmp").write_text("a live run's atomic write in progress")
  before = tree_digest(workdir)
  busy = run("train.py", f"--workdir={workdir}", *TINY, check=False)
  assert_user_error(busy, "is in use", f"pid {proc.pid}")
  assert tree_digest(workdir) == before and not (workdir / "checkpoints").exists()
