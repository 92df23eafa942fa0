"""train.py and sample.py as a user runs them: end to end, interrupted, and given bad input.

Bad input must give exit status 2, one line `error: ...` on stderr, no
traceback, and leave any checkpoint in the workdir as it was.
"""

import gzip
import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

TINY = ["--config.num_train_steps=20", "--config.batch_size=32", "--config.eval_batch_size=100",
        "--config.log_every=10", "--config.checkpoint_every=10", "--config.eval_every=1000",
        "--config.sample_every=1000", "--config.num_grid_images=8", "--config.progress_bar=False",
        "--config.data.shapes_num_train=512", "--config.data.shapes_num_test=100",
        "--config.model.hidden=(32,)", "--config.model.latent_dim=4"]


def run(script: str, *args: str, devices: int = 1, check: bool = True) -> subprocess.CompletedProcess:
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
             "--xla_backend_optimization_level=0", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  if check and proc.returncode != 0:
    raise AssertionError(f"{script} {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  return proc


def tree_digest(path: Path) -> str:
  h = hashlib.sha256()
  for f in sorted(p for p in path.rglob("*") if p.is_file()):
    h.update(str(f.relative_to(path)).encode())
    h.update(f.read_bytes())
  return h.hexdigest()


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, proc.stderr
  for fragment in fragments:
    assert fragment in errors[0], errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
  """A tiny run trained through the CLI on 4 devices (the default jit backend)."""
  wd = tmp_path_factory.mktemp("cli") / "run"
  run("train.py", f"--workdir={wd}", *TINY, devices=4)
  return wd


def test_train_then_sample_end_to_end(trained, tmp_path):
  assert (trained / "metrics.jsonl").exists() and (trained / "samples").is_dir()
  out = tmp_path / "s.png"
  proc = run("sample.py", f"--workdir={trained}", "--num_samples=9", f"--output={out}",
             "--seed=3", "--temperature=0.8", f"--reconstructions={tmp_path / 'r.png'}",
             "--num_reconstructions=4", f"--interpolations={tmp_path / 'i.png'}",
             "--interpolation_rows=2", "--interpolation_steps=5")
  assert "step 20" in proc.stdout
  # 3x3 grid of 28x28 images with 1-pixel borders: 3 * 29 + 1 = 88.
  assert Image.open(out).size == (88, 88)
  assert Image.open(tmp_path / "i.png").size == (5 * 29 + 1, 2 * 29 + 1)
  # Same seed, same picture; another seed, another picture.
  again, other = tmp_path / "again.png", tmp_path / "other.png"
  run("sample.py", f"--workdir={trained}", "--num_samples=9", f"--output={again}", "--seed=3",
      "--temperature=0.8")
  run("sample.py", f"--workdir={trained}", "--num_samples=9", f"--output={other}", "--seed=4",
      "--temperature=0.8")
  assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))
  assert not np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(other)))


def test_sample_restores_params_only(trained, tmp_path):
  """A run trained on 4 devices samples on 1 CPU device with every non-params item removed."""
  wd = tmp_path / "params_only"
  import shutil
  shutil.copytree(trained, wd)
  for step_dir in (wd / "checkpoints").iterdir():
    for item in ("opt_state", "rng", "data", "step"):
      shutil.rmtree(step_dir / item)
  run("sample.py", f"--workdir={wd}", "--num_samples=4", f"--output={tmp_path / 's.png'}", "--seed=5",
      devices=1)
  run("sample.py", f"--workdir={trained}", "--num_samples=4", f"--output={tmp_path / 'full.png'}",
      "--seed=5", devices=1)
  # The trained parameters, not a fresh initialisation: the same picture as from the whole run.
  pictures = [np.asarray(Image.open(tmp_path / name)) for name in ("s.png", "full.png")]
  assert np.array_equal(*pictures)


def start_training(wd: Path, args: list[str]) -> subprocess.Popen:
  """train.py in the background on one device, returned once it has written its first metrics row."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1 "
             "--xla_backend_optimization_level=0", JAX_PLATFORMS="cpu")
  proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), f"--workdir={wd}", *args],
                          cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while time.time() < deadline and not (wd / "metrics.jsonl").exists():
    time.sleep(0.05)
  return proc


def test_interrupt_and_resume_matches_uninterrupted(tmp_path):
  """Ctrl-C saves a checkpoint; rerunning the command finishes with identical parameters."""
  args = [*TINY, "--config.num_train_steps=400", "--config.checkpoint_every=1000"]
  run("train.py", f"--workdir={tmp_path / 'straight'}", *args)
  wd = tmp_path / "interrupted"
  proc = start_training(wd, args)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  if proc.returncode == 0:
    pytest.skip("the run finished before it could be interrupted")
  assert proc.returncode == 130, err[-2000:]
  assert "interrupted at step" in err and "Traceback" not in err, err[-2000:]
  steps = [int(p.name) for p in (wd / "checkpoints").iterdir() if p.name.isdigit()]
  assert steps and max(steps) < 400
  run("train.py", f"--workdir={wd}", *args)
  a = (tmp_path / "straight" / "checkpoints" / "400" / "params")
  b = (wd / "checkpoints" / "400" / "params")
  from vae_jax import inference
  import jax
  pa = jax.device_get(inference.load_trained(tmp_path / "straight").params)
  pb = jax.device_get(inference.load_trained(wd).params)
  assert a.exists() and b.exists()
  for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
    np.testing.assert_array_equal(x, y)


def test_a_second_ctrl_c_aborts_with_one_line(tmp_path):
  """Two Ctrl-Cs in a row: exit 130, one closing line, no traceback, and a resumable workdir."""
  args = [*TINY, "--config.num_train_steps=4000", "--config.checkpoint_every=1000"]
  wd = tmp_path / "run"
  proc = start_training(wd, args)
  proc.send_signal(signal.SIGINT)
  time.sleep(0.01)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-2000:]
  assert "Traceback" not in err, err[-3000:]
  closing = [line for line in err.splitlines() if line.startswith(("aborted at step", "interrupted at step"))]
  assert len(closing) == 1, err[-2000:]
  run("train.py", f"--workdir={wd}", *args, "--config.num_train_steps=100")  # resumes or restarts


# --- bad input: one error line, exit 2, checkpoints untouched -----------------------------------

def write_idx(directory: Path, side: int, n: int = 64) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for prefix, count in (("train", n), ("t10k", n // 2)):
    pixels = rng.integers(0, 256, (count, side, side), dtype=np.uint8)
    with gzip.open(directory / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
      f.write(struct.pack(">IIII", 0x803, count, side, side) + pixels.tobytes())
    with gzip.open(directory / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
      f.write(struct.pack(">II", 0x801, count) + bytes(count))


def folder_with_corrupt_image(directory: Path) -> Path:
  directory.mkdir(parents=True, exist_ok=True)
  for i in range(6):
    Image.fromarray(np.full((40, 30, 3), 40 * i, np.uint8)).save(directory / f"ok{i}.png")
  good = (directory / "ok0.png").read_bytes()
  (directory / "broken.png").write_bytes(good[: len(good) // 2])
  return directory


BAD_INPUTS = {
    "missing dataset dir": (["--config=configs/mnist_mlp.py", "--config.data.dir=/nonexistent/mnist"],
                            ["/nonexistent/mnist"]),
    "unknown config key": (["--config.model.latnt_dim=3"], ["latnt_dim"]),
    "config value of the wrong type": (["--config.batch_size=many"], ["batch_size"]),
    "unknown loss": (["--config.loss=elbow"], ["elbow", "beta_elbo"]),
    "batch not divisible by devices": (["--config.batch_size=30", "--config.num_devices=4"], ["batch_size"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_leaves_checkpoints(trained, tmp_path, case):
  import shutil
  wd = tmp_path / "run"
  shutil.copytree(trained, wd)
  before = tree_digest(wd)
  args, fragments = BAD_INPUTS[case]
  config_file = [a for a in args if a.startswith("--config=")]  # must precede overrides
  rest = [a for a in args if a not in config_file]
  proc = run("train.py", f"--workdir={wd}", *config_file, *TINY, *rest, devices=4, check=False)
  assert_user_error(proc, *fragments)
  assert tree_digest(wd) == before


def test_corrupt_image_in_folder(tmp_path):
  images = folder_with_corrupt_image(tmp_path / "images")
  proc = run("train.py", f"--workdir={tmp_path / 'run'}", *TINY, "--config.data.name=folder",
             f"--config.data.dir={images}", check=False)
  assert_user_error(proc, "broken.png", "skip_bad_images")
  assert not (tmp_path / "run").exists()
  run("train.py", f"--workdir={tmp_path / 'run'}", *TINY, "--config.data.name=folder",
      f"--config.data.dir={images}", "--config.data.skip_bad_images=True", "--config.batch_size=4",
      "--config.eval_batch_size=4", "--config.data.image_size=28")
  assert (tmp_path / "run" / "checkpoints").is_dir()


def test_images_of_the_wrong_shape(tmp_path):
  idx_dir = tmp_path / "idx32"
  write_idx(idx_dir, side=32)
  proc = run("train.py", f"--workdir={tmp_path / 'run'}", "--config=configs/mnist_mlp.py", *TINY,
             f"--config.data.dir={idx_dir}", check=False)
  assert_user_error(proc, "32")
  assert not (tmp_path / "run").exists()


def test_sample_with_unreadable_checkpoints(trained, tmp_path):
  import shutil
  wd = tmp_path / "run"
  shutil.copytree(trained, wd)
  for f in (wd / "checkpoints").rglob("*"):
    if f.is_file() and "params" in f.parts:
      f.write_bytes(b"not a checkpoint")
  before = tree_digest(wd)
  proc = run("sample.py", f"--workdir={wd}", f"--output={tmp_path / 's.png'}", check=False)
  assert_user_error(proc, "no readable checkpoint")
  assert tree_digest(wd) == before
  assert not (tmp_path / "s.png").exists()


def _truncate_data_files(step_dir: Path) -> None:
  """Damage a checkpoint as a full disk would: its metadata intact, its array data cut short."""
  for f in (step_dir / "params" / "d").rglob("*"):
    if f.is_file():
      f.write_bytes(f.read_bytes()[:20])


@pytest.mark.parametrize("script", ["train.py", "sample.py"])
def test_a_damaged_newest_checkpoint_is_one_warning_line(trained, tmp_path, script):
  import shutil
  wd = tmp_path / "run"
  shutil.copytree(trained, wd)
  _truncate_data_files(wd / "checkpoints" / "20")
  args = [*TINY, "--config.num_train_steps=30"] if script == "train.py" else [f"--output={tmp_path / 's.png'}"]
  proc = run(script, f"--workdir={wd}", *args)
  warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
  assert len(warnings) == 1 and "step 20" in warnings[0] and "falling back to step 10" in warnings[0], proc.stderr
  assert "Traceback" not in proc.stderr and "Event loop" not in proc.stderr and "pybind11" not in proc.stderr
  assert (script == "train.py") == bool(list((wd / "checkpoints").glob("20.unreadable-*")))


def test_sample_without_a_run(tmp_path):
  assert_user_error(run("sample.py", f"--workdir={tmp_path}", check=False), "config.json")


@pytest.mark.parametrize("script, flag, expected", [
    ("train.py", "--help", ["--workdir", "--config.KEY=VALUE", "vae_jax/config.py"]),
    ("sample.py", "-h", ["--num_samples", "--label", "--temperature"]),
    ("vae_jax/evaluate.py", "--helpfull", ["--metrics", "--k", "--num_examples", "--output"]),
])
def test_help_lists_the_flags_and_exits_0(script, flag, expected):
  proc = run(script, flag, check=False)
  assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  for text in expected:
    assert text in proc.stdout, (text, proc.stdout[:3000])
