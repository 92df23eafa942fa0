"""Fault injection (issue 7): train.py killed with SIGKILL at any moment resumes to the same end.

Each trial starts the tiny run of tests/test_cli.py (60 steps, a checkpoint every 10, one step
per call, a metrics row per step) in a fresh workdir and kills it at a seeded random moment:
while it starts, after a given step, as soon as an asynchronous save has begun (Orbax's
`<step>.orbax-checkpoint-tmp` directory appears), or during the final evaluation. Some trials
kill the rerun too. Then the command is rerun to the end, and:

  (a) every rerun exits 0 and says where it resumes: the newest checkpoint on disk;
  (b) a kill loses only the one save that may be in flight (under two intervals of steps);
  (c) the final parameters are the uninterrupted reference run's, bit for bit;
  (d) metrics.jsonl has one row per (split, step), with the reference's losses, and the
      workdir has the reference's outputs.

Then an unwritable workdir, and a full disk (RLIMIT_FSIZE), must each be one `error:` line.

The processes share a persistent XLA compilation cache, filled by the reference run, so each
starts in seconds instead of recompiling (the compiled code is the same); the trials run two
at a time, as each process is mostly one busy thread.
"""

import collections
import concurrent.futures
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import REPO
from test_cli import TINY, assert_user_error, tree_digest

STEPS, EVERY = 60, 10
ARGS = [*TINY, f"--config.num_train_steps={STEPS}", f"--config.checkpoint_every={EVERY}",
        "--config.steps_per_call=1", "--config.log_every=1"]
TRIALS, WORKERS = 10, 2
# What sets off each trial's first kill; trials 1, 4 and 7 kill the rerun too.
KINDS = ("startup", "step", "saving", "step", "saving", "final", "step", "saving", "step", "saving")
CHAINED = {1: "step", 4: "saving", 7: "step"}
# As root, the child drops the capabilities that let root ignore permission bits.
AS_USER = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps",
           "-dac_override,-dac_read_search", "--"]


# --- processes ------------------------------------------------------------------------------------

def environment(cache: Path) -> dict:
  """test_cli's `run` environment (one CPU device, no XLA optimisation) and a shared compile cache."""
  return dict(os.environ, JAX_PLATFORMS="cpu",
              XLA_FLAGS="--xla_force_host_platform_device_count=1 --xla_backend_optimization_level=0",
              JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
              JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


class Launch:
  """One `python train.py --workdir=DIR ...` process, its stderr in a file beside DIR."""

  def __init__(self, wd: Path, cache: Path, name: str, *extra: str, prefix=(), preexec=None):
    self.err_path = wd.parent / f"{name}.stderr"
    command = [*prefix, sys.executable, str(REPO / "train.py"), f"--workdir={wd}", *ARGS, *extra]
    with self.err_path.open("w") as err:
      self.proc = subprocess.Popen(command, cwd=REPO, env=environment(cache), stdout=subprocess.DEVNULL,
                                   stderr=err, preexec_fn=preexec)

  def wait(self, timeout: float = 120) -> "Launch":
    try:
      self.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.proc.kill()
      self.proc.wait()
      raise
    return self

  @property
  def stderr(self) -> str:
    return self.err_path.read_text()

  def completed(self) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, "", self.stderr)


# --- the workdir as the test sees it --------------------------------------------------------------

class Metrics:
  """The rows of DIR/metrics.jsonl, re-read only when the file changed (it is polled every ms)."""

  def __init__(self, wd: Path):
    self.path, self._key, self._rows = wd / "metrics.jsonl", None, []

  def rows(self) -> list[dict]:
    try:
      st = self.path.stat()
    except FileNotFoundError:
      return []
    if (st.st_ino, st.st_size, st.st_mtime_ns) != self._key:
      lines = self.path.read_text().splitlines()
      self._rows = [json.loads(line) for line in lines if line.endswith("}")]  # not a half-written line
      self._key = (st.st_ino, st.st_size, st.st_mtime_ns)
    return self._rows

  def last_train_step(self) -> int:
    return max((r["step"] for r in self.rows() if r["split"] == "train"), default=0)

  def finished(self) -> bool:
    return any(r["split"] == "test" and r["step"] == STEPS for r in self.rows())


def entries(wd: Path) -> list[str]:
  try:
    return os.listdir(wd / "checkpoints")
  except FileNotFoundError:
    return []


def newest_checkpoint(wd: Path) -> int | None:
  return max((int(name) for name in entries(wd) if name.isdigit()), default=None)


def expected_start(wd: Path) -> str | None:
  """What a rerun must say first: where it resumes, that the run is done, or nothing (a new run)."""
  newest = newest_checkpoint(wd)
  if newest is None:
    return None
  if newest == STEPS and Metrics(wd).finished():
    return f"already finished at step {STEPS}"
  return f"resuming from step {newest} "


def outputs(wd: Path) -> set[str]:
  """The files of a workdir outside its checkpoints: metrics, config, images, curves."""
  return {str(p.relative_to(wd)) for p in wd.rglob("*")
          if p.is_file() and p.relative_to(wd).parts[0] != "checkpoints"}


# --- kill triggers --------------------------------------------------------------------------------

def after_seconds(seconds: float):
  t0 = time.monotonic()
  return lambda: time.monotonic() - t0 >= seconds


def after_step(wd: Path, step: int):
  metrics = Metrics(wd)
  return lambda: metrics.last_train_step() >= step


def save_started(wd: Path, k: int):
  """Fires when a poll has seen the k-th `<step>.orbax-checkpoint-tmp` directory appear."""
  seen, count = {n for n in entries(wd) if "tmp" in n}, 0

  def fire() -> bool:
    nonlocal seen, count
    now = {n for n in entries(wd) if "tmp" in n}
    count += len(now - seen)
    seen = now
    return count >= k
  return fire


def trigger(kind: str, wd: Path, rng: random.Random):
  """(fire, delay): SIGKILL `delay` seconds after `fire()` first holds."""
  logged = Metrics(wd).last_train_step()  # a rerun's own rows come after the killed run's
  if kind == "startup":
    return after_seconds(rng.uniform(0.0, 3.0)), 0.0
  if kind == "step":
    return after_step(wd, rng.randint(logged + 1, STEPS)), rng.uniform(0.0, 0.03)
  if kind == "saving":
    return save_started(wd, rng.randint(1, STEPS // EVERY - logged // EVERY)), 0.0
  assert kind == "final"
  return after_step(wd, STEPS), rng.uniform(0.0, 1.5)


def kill_when(launch: Launch, fire, delay: float, timeout: float = 120) -> bool:
  """SIGKILLs the process `delay` s after `fire()` first holds; False when it exited before."""
  deadline = time.monotonic() + timeout
  while not fire():
    if launch.proc.poll() is not None:
      return False
    if time.monotonic() > deadline:
      launch.proc.kill()
      raise AssertionError(f"the kill trigger never fired in {timeout} s")
    time.sleep(0.001)
  time.sleep(delay)
  launch.proc.send_signal(signal.SIGKILL)
  return launch.wait().proc.returncode == -signal.SIGKILL


# --- checks ---------------------------------------------------------------------------------------

def check_start(launch: Launch, expected: str | None, *, completed: bool) -> None:
  """(a) The process said where it starts as the workdir dictated (a killed one may not have yet)."""
  err = launch.stderr
  lines = [line for line in err.splitlines() if line.startswith(("resuming from", "the run in"))]
  if expected is None:
    assert not lines, err[-2000:]
  elif completed or lines:
    assert len(lines) == 1 and expected in lines[0], (expected, err[-2000:])


def check_loss(wd: Path, before: int | None, logged: int) -> None:
  """(b) A kill loses only the saves still in flight: at most one, as each save waits for the last.

  Steps are logged before the step's save starts, so the newest save started is the last
  multiple of EVERY below `logged`, and the newest finished one is at most EVERY older.
  """
  newest = newest_checkpoint(wd) or 0
  started = (logged - 1) // EVERY * EVERY if logged else 0
  assert newest >= started - EVERY, f"killed at logged step {logged}, newest checkpoint {newest}"
  assert newest >= (before or 0), "a kill lost a checkpoint that existed before"


def check_clean_exit(launch: Launch) -> None:
  err = launch.stderr
  assert launch.proc.returncode == 0, err[-3000:]
  assert "Traceback" not in err, err[-3000:]
  assert not [line for line in err.splitlines() if line.startswith(("warning:", "error:"))], err[-3000:]


def check_end_state(wd: Path, reference: dict) -> None:
  """(c) the reference's parameters exactly; (d) its metrics rows, once each, and its outputs."""
  from vae_jax import inference, metrics_log
  trained = inference.load_trained(wd)
  assert trained.step == STEPS
  got, want = jax.device_get(trained.params), reference["params"]
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_array_equal(x, y)
  rows = metrics_log.read(wd / "metrics.jsonl")
  counts = collections.Counter((r["split"], r["step"]) for r in rows)
  assert not [k for k, n in counts.items() if n > 1], "duplicate metrics rows"
  assert losses(rows) == reference["losses"]
  assert outputs(wd) == outputs(reference["wd"])
  assert not [n for n in entries(wd) if not n.isdigit()], "temporary or unreadable checkpoints left"


def losses(rows: list[dict]) -> list[tuple]:
  return [(r["split"], r["step"], r.get("loss", r.get("neg_elbo"))) for r in rows]


# --- the kill trials ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
  return tmp_path_factory.mktemp("xla_cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache) -> dict:
  """The uninterrupted run: its workdir, final parameters and metrics (it also fills the cache)."""
  from vae_jax import inference, metrics_log
  wd = tmp_path_factory.mktemp("reference") / "run"
  check_clean_exit(Launch(wd, cache, "reference").wait())
  rows = metrics_log.read(wd / "metrics.jsonl")
  assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, STEPS + 1))
  return {"wd": wd, "params": jax.device_get(inference.load_trained(wd).params), "losses": losses(rows)}


def kills(trial: int) -> list[str]:
  return [KINDS[trial]] + ([CHAINED[trial]] if trial in CHAINED else [])


def run_trial(trial: int, wd: Path, cache: Path) -> list[str]:
  """Kills and reruns one trial's run to the end, checking (a) and (b); returns what happened."""
  rng, events = random.Random(1000 + trial), []
  for i, kind in enumerate(kills(trial)):
    expected, before = expected_start(wd), newest_checkpoint(wd)
    if kind != "startup" and Metrics(wd).last_train_step() >= STEPS:
      break  # nothing left to interrupt
    launch = Launch(wd, cache, f"killed{i}")
    killed = kill_when(launch, *trigger(kind, wd, rng))
    logged = Metrics(wd).last_train_step()
    events.append(f"{kind}: {'killed' if killed else 'exited'} at logged step {logged}, "
                  f"checkpoints {sorted(entries(wd))}")
    check_start(launch, expected, completed=not killed)
    check_loss(wd, before, logged)
  expected = expected_start(wd)
  final = Launch(wd, cache, "rerun").wait()
  check_clean_exit(final)
  check_start(final, expected, completed=True)
  return events


@pytest.fixture(scope="module")
def trials(request, reference, cache, tmp_path_factory) -> dict[int, tuple]:
  """{trial: (workdir, events, error)} for the selected trials, WORKERS trials at a time."""
  chosen = sorted({item.callspec.params["trial"] for item in request.session.items
                   if "trial" in getattr(getattr(item, "callspec", None), "params", {})})
  workdirs = {t: tmp_path_factory.mktemp(f"trial{t}") / "run" for t in chosen}

  def one(trial):
    try:
      return workdirs[trial], run_trial(trial, workdirs[trial], cache), None
    except Exception as e:  # raised again by the trial's own test
      return workdirs[trial], [], e
  with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
    return dict(zip(chosen, pool.map(one, chosen)))


@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_killed_run_resumes_to_the_uninterrupted_result(trials, reference, trial):
  wd, events, error = trials[trial]
  print("\n".join(events))  # shown when the test fails
  if error is not None:
    raise error
  check_end_state(wd, reference)


def test_a_kill_between_the_final_row_and_the_grids_is_made_good(reference, cache, tmp_path):
  """Killed after the final test row but before the grids (and curves): the rerun writes them."""
  wd = tmp_path / "run"
  shutil.copytree(reference["wd"], wd)
  shutil.rmtree(wd / "samples")
  (wd / "curves.png").unlink(missing_ok=True)
  check_clean_exit(Launch(wd, cache, "rerun").wait())
  assert outputs(wd) == outputs(reference["wd"])


# --- unwritable workdir, full disk ------------------------------------------------------------------

def as_user(read_only_dir: Path) -> list[str]:
  """A command prefix under which `read_only_dir` is not writable (setpriv for root), or a skip."""
  prefix = AS_USER if os.geteuid() == 0 and shutil.which("setpriv") else []
  if subprocess.run([*prefix, "test", "-w", str(read_only_dir)]).returncode == 0:
    pytest.skip("root ignores permissions here (setpriv missing or not allowed to drop them)")
  return prefix


@pytest.mark.parametrize("read_only", [
    (".", "checkpoints"),
    ("checkpoints",),
], ids=["workdir", "checkpoints"])
def test_an_unwritable_workdir_is_one_error_line(reference, cache, tmp_path, read_only):
  """Resuming into a workdir (or its checkpoints) that cannot be written: one `error:` line,
  exit 2, no traceback, and the checkpoints as they were."""
  wd = tmp_path / "run"
  shutil.copytree(reference["wd"], wd)
  before = tree_digest(wd / "checkpoints")
  for name in read_only:
    (wd / name).chmod(0o555)
  try:
    prefix = as_user(wd / read_only[-1])
    launch = Launch(wd, cache, "read_only", f"--config.num_train_steps={STEPS + 10}", prefix=prefix)
    launch.wait()
  finally:
    for name in read_only:
      (wd / name).chmod(0o755)
  assert_user_error(launch.completed(), "writ")
  assert tree_digest(wd / "checkpoints") == before


def small_files(limit: int):
  """A preexec_fn: files over `limit` bytes cannot be written (EFBIG), as on a full disk."""
  def limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
  return limit_file_size


def test_a_full_disk_is_one_error_line(reference, cache, tmp_path):
  """No room for the first checkpoint: one `error:` line, exit 2, and no step directory.

  (`reference` fills the compile cache, which this process then only reads.)"""
  wd = tmp_path / "run"
  launch = Launch(wd, cache, "full", preexec=small_files(30_000)).wait()
  assert not [n for n in entries(wd) if n.isdigit()]
  assert_user_error(launch.completed(), "checkpoint")
