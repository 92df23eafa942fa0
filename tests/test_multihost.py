"""Multi-process training through train.py: 2 processes x 2 CPU devices on localhost, joined with
--coordinator_address/--num_processes/--process_id, train the global batch as 1 process x 4
devices does: equal parameters after 20 steps (pmap), and after both restore that checkpoint and
go on to 30 (jit). The checkpoints they write restore in one process; only process 0 writes the
run's records.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from conftest import REPO
from vae_jax import inference, metrics_log

# The tiny run of test_cli.TINY: shapes data, a small MLP; checkpoints at 10, 20, 30; the test
# loss and is_nll (k = 6 in chunks of 4: the encoder's output is passed between jitted calls).
TINY = ["--config.batch_size=32", "--config.eval_batch_size=100", "--config.log_every=10",
        "--config.checkpoint_every=10", "--config.eval_every=1000", "--config.sample_every=1000",
        "--config.num_grid_images=8", "--config.progress_bar=False",
        "--config.data.shapes_num_train=512", "--config.data.shapes_num_test=100",
        "--config.model.hidden=(32,)", "--config.model.latent_dim=4",
        "--config.evaluators=('loss','is_nll')", "--config.is_nll_k=6", "--config.is_nll_chunk=4"]
STEPS = 30
TIMEOUT_S = 240  # per launch: far above the ~20 s one takes on a loaded 2-core machine


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(wd: Path, logs: Path, name: str, *args: str, devices: int) -> subprocess.Popen:
  """train.py on `devices` CPU devices, its stdout and stderr to logs/NAME.{out,err}."""
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
             "--xla_backend_optimization_level=0", JAX_PLATFORMS="cpu")
  logs.mkdir(exist_ok=True)
  with open(logs / f"{name}.out", "w") as out, open(logs / f"{name}.err", "w") as err:
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), f"--workdir={wd}", *TINY, *args],
                            cwd=REPO, env=env, stdout=out, stderr=err)


def stderr_of(logs: Path, name: str) -> str:
  return (logs / f"{name}.err").read_text()


def kill_all(procs: dict[str, subprocess.Popen]) -> None:
  for p in procs.values():
    if p.poll() is None:
      p.kill()
      p.wait()


def wait_all(procs: dict[str, subprocess.Popen], logs: Path, timeout: float = TIMEOUT_S) -> None:
  """Waits for every process to exit 0; on a failure or the timeout, kills them all and fails
  with every process's stderr (a peer left alone would wait for the failed one for minutes)."""
  deadline = time.monotonic() + timeout
  try:
    while any(p.poll() is None for p in procs.values()):
      if any(p.poll() not in (None, 0) for p in procs.values()) or time.monotonic() > deadline:
        break
      time.sleep(0.2)
  except BaseException:  # e.g. Ctrl-C in pytest: leave nothing running
    kill_all(procs)
    raise
  codes = {name: p.poll() for name, p in procs.items()}
  if all(code == 0 for code in codes.values()):
    return
  kill_all(procs)
  report = "\n".join(f"--- {name} (exit {codes[name]}; None: still running, killed):\n"
                     f"{stderr_of(logs, name)[-4000:]}" for name in procs)
  raise AssertionError(f"train.py failed or timed out after {timeout} s:\n{report}")


def train_two_processes(wd: Path, logs: Path, tag: str, *args: str) -> dict[str, str]:
  """Both processes of a 2 x 2-device run in `wd`; their stderrs by name."""
  port = free_port()
  procs = {f"{tag}.p{i}": launch(wd, logs, f"{tag}.p{i}", f"--coordinator_address=127.0.0.1:{port}",
                                 "--num_processes=2", f"--process_id={i}", *args, devices=2)
           for i in range(2)}
  wait_all(procs, logs)
  return {name: stderr_of(logs, name) for name in procs}


def max_abs_diff(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def params_at(wd: Path, step: int, scratch: Path):
  """The params of `wd`'s checkpoint `step`, restored here: one process, whatever wrote them.

  Restored from a copy of the run without its later checkpoints, so that `step` is the newest.
  """
  ckpts = wd / "checkpoints"
  later = [p.name for p in ckpts.iterdir() if p.name.isdigit() and int(p.name) > step]
  if later:
    skip = lambda d, names: later if Path(d) == ckpts else []  # noqa: E731
    wd = Path(shutil.copytree(wd, scratch / f"{wd.name}_at_{step}", ignore=skip))
  trained = inference.load_trained(wd)
  assert trained.step == step
  return trained.params


def test_two_processes_train_and_resume_like_one(tmp_path):
  logs = tmp_path / "logs"
  # Reference: one process, 4 devices (jit, the default backend); checkpoints 10, 20, 30.
  one = tmp_path / "one"
  wait_all({"one": launch(one, logs, "one", f"--config.num_train_steps={STEPS}", devices=4)}, logs)

  # 2 processes x 2 devices with pmap, stopped at step 20 (a finished 20-step run): where one
  # process was at step 20.
  wd = tmp_path / "two"
  errs = train_two_processes(wd, logs, "first", "--config.parallel=pmap", "--config.num_train_steps=20")
  assert all("4 cpu device(s) on 2 hosts with pmap" in e for e in errs.values()), errs
  assert max_abs_diff(params_at(wd, 20, tmp_path), params_at(one, 20, tmp_path)) < 2e-5

  # Both processes restore step 20 and go on to 30 with jit (the backend may change on resume),
  # ending where one uninterrupted process did.
  errs = train_two_processes(wd, logs, "again", f"--config.num_train_steps={STEPS}")
  assert all("resuming from step 20" in e and "on 2 hosts with jit" in e for e in errs.values()), errs
  assert max_abs_diff(params_at(wd, STEPS, tmp_path), params_at(one, STEPS, tmp_path)) < 2e-5

  # Process 0 alone wrote the records: each (split, step) once, as one process writes them.
  rows = [(r["split"], r["step"]) for r in metrics_log.read(wd / "metrics.jsonl")]
  assert sorted(rows) == sorted([("train", 10), ("train", 20), ("test", 20), ("train", 30),
                                 ("test", 30)]), rows
  # The final evaluation over 2 hosts (jit) gives one process's figures, importance samples included.
  final = [{k: r[k] for k in ("loss", "is_nll", "is_nll_num_examples")}
           for d in (wd, one) for r in metrics_log.read(d / "metrics.jsonl") if r["split"] == "test"
           and r["step"] == STEPS]
  assert final[0]["is_nll_num_examples"] == final[1]["is_nll_num_examples"] == 100, final
  assert all(abs(final[0][k] - final[1][k]) < 1e-4 * abs(final[1][k]) for k in ("loss", "is_nll")), final
  assert (wd / "config.json").is_file() and (wd / "curves.png").is_file()
  assert len((wd / "config_history.jsonl").read_text().splitlines()) == 1  # the one resume
  assert sorted(p.name for p in (wd / "checkpoints").iterdir()) == ["10", "20", "30"]


def test_some_but_not_all_distributed_flags_are_one_error_line(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, str(REPO / "train.py"), f"--workdir={tmp_path / 'run'}",
                         "--coordinator_address=127.0.0.1:1234", "--num_processes=2"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "--process_id" in errors[0], proc.stderr
  assert not (tmp_path / "run").exists()


def test_help_lists_the_distributed_flags():
  proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--help"], cwd=REPO,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  for flag in ("--coordinator_address", "--num_processes", "--process_id", "--distributed"):
    assert flag in proc.stdout, proc.stdout
