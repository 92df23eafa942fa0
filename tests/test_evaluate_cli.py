"""python -m vae_jax.evaluate and sample.py on runs of every model family.

The evaluation of a run's final checkpoint must reproduce the run's own final test line
(same fixed binarisation and draws), and its JSON must carry the documented fields.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from test_cli import assert_user_error
from vae_jax import evaluate, images, inference, latents, metrics_log, sampling, trainer

MODELS = {
    "vae": {},
    "ladder": {"model.name": "ladder", "model.latent_dims": (4, 2), "model.hidden": (16, 8),
               "model.layers_per_latent": 1},
    "vae_ar": {"model.likelihood": "ar_bernoulli", "model.ar_kernel": 3, "model.ar_hidden": 4},
    "hvae": {"model.name": "hvae", "model.resolutions": (28, 14), "model.widths": (8, 8),
             "model.blocks_per_res": (1, 1), "model.enc_blocks_per_res": (0, 0),
             "model.z_channels": 1, "steps_per_call": 1, "ema_decay": 0.9, "skip_updates": True,
             "skip_window": 5, "num_devices": 1},
}


def _cli(*args, module=None):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2 "
             "--xla_backend_optimization_level=0", JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "-m", module, *args] if module else [sys.executable, *args]
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module", params=sorted(MODELS))
def run_dir(request, tmp_path_factory):
  from conftest import tiny_config
  wd = tmp_path_factory.mktemp(request.param) / "run"
  trainer.train_and_evaluate(tiny_config(num_train_steps=10, evaluators=("loss", "active_units"),
                                         **MODELS[request.param]), wd)
  return request.param, wd


def test_evaluate_reproduces_the_runs_final_test_line(run_dir):
  name, wd = run_dir
  final = [r for r in metrics_log.read(wd / "metrics.jsonl") if r["split"] == "test"][-1]
  got = evaluate.evaluate_run(wd, ["elbo", "is_nll", "active_units"], k=3)
  assert got["params"] == ("ema" if name == "hvae" else "raw")
  assert got["step"] == final["step"] == 10 and got["num_examples"] == final["num_examples"] == 150
  for key in ("neg_elbo", "recon", "kl"):
    assert got[key] == pytest.approx(final[key], rel=1e-5), key
  assert got["active_units"] == final["active_units"]
  assert got["k"] == 3 and np.isfinite(got["is_nll"]) and got["is_nll_stderr"] > 0


def _tiles(path, rows: int, cols: int) -> np.ndarray:
  """The 28 x 28 tiles of a written grid (1-pixel gaps), [rows, cols, 28, 28], as ints."""
  a = np.asarray(Image.open(path), np.int32)
  assert a.shape == (rows * 29 + 1, cols * 29 + 1)
  return np.stack([np.stack([a[1 + 29 * r:29 * (r + 1), 1 + 29 * c:29 * (c + 1)] for c in range(cols)])
                   for r in range(rows)])


def test_sample_grids_work_for_every_model(run_dir, tmp_path):
  """What sample.py writes (test_cli runs the script itself). Prior samples at temperature 0 are
  the prior mean's decoding, one image for every key; at 1 they differ. Reconstructions sit
  right of their test image, each what the model reconstructs from that image alone."""
  _, wd = run_dir
  run = inference.load_trained(wd)
  hot = _tiles(inference.write_prior_samples(run, tmp_path / "a.png", num=4, seed=0, temperature=1.0), 2, 2)
  cold = _tiles(inference.write_prior_samples(run, tmp_path / "b.png", num=4, seed=0, temperature=0.0), 2, 2)
  cold, hot = cold.reshape(4, 28, 28), hot.reshape(4, 28, 28)
  assert all(np.array_equal(cold[0], t) for t in cold[1:])
  assert not all(np.array_equal(hot[0], t) for t in hot[1:])
  tiles = _tiles(inference.write_reconstructions(run, tmp_path / "r.png", num=4), 2, 4).reshape(8, 28, 28)
  x, y = inference.first_test_images(run, 4)
  for i in range(4):
    np.testing.assert_array_equal(tiles[2 * i], x[i, ..., 0])
    alone = sampling.reconstructions(run.params, x[i:i + 1], model=run.model, y=None if y is None else y[i:i + 1])
    want = images.to_uint8(np.asarray(alone))[0, ..., 0].astype(np.int32)
    assert np.max(np.abs(tiles[2 * i + 1] - want)) <= 1, i
  # Interpolations: row i goes from test image i to test image 2 + i, through every latent group.
  path = latents.interpolation_path(run.params, x[:2], x[2:], model=run.model, num_steps=3,
                                    y_a=None if y is None else y[:2])
  np.testing.assert_array_equal(np.asarray(latents.interpolation_grid(run, num_rows=2, num_steps=3)),
                                np.asarray(images.grid_image(np.asarray(path), ncol=3)))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
  from conftest import tiny_config
  wd = tmp_path_factory.mktemp("eval_cli") / "run"
  # A run whose config limits is_nll during training to its first 20 examples (as mnist_ar does):
  # evaluate must not inherit that limit.
  trainer.train_and_evaluate(tiny_config(num_train_steps=10, is_nll_num_examples=20), wd)
  return wd


def test_evaluate_cli_writes_the_documented_json(tmp_path, small_run):
  wd = small_run
  out = tmp_path / "eval.json"
  proc = _cli("--workdir", str(wd), "--metrics", "is_nll,elbo", "--k", "5", "--num_examples", "40",
              "--output", str(out), module="vae_jax.evaluate")
  assert proc.returncode == 0, proc.stderr[-2000:]
  record = json.loads(out.read_text())
  for key in ("step", "num_examples", "k", "is_nll", "is_nll_stderr", "neg_elbo", "bits_per_dim", "params"):
    assert key in record, key
  assert (record["step"], record["num_examples"], record["k"], record["params"]) == (10, 40, 5, "raw")
  assert record["is_nll_num_examples"] == 40  # --num_examples, not the run's is_nll_num_examples
  assert record["params_digest"] == inference.params_digest(inference.load_trained(wd).params)
  assert "is_nll" in proc.stdout and not (tmp_path / "eval.json.tmp").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--metrics", "is_nl"], "unknown evaluator 'is_nl'"),
    (["--output", "{tmp}/no/such/dir/x.json"], "does not exist"),
])
def test_evaluate_cli_bad_input_is_one_line(tmp_path, small_run, args, fragment):
  wd = small_run
  args = [a.replace("{tmp}", str(tmp_path)) for a in args]
  assert_user_error(_cli("--workdir", str(wd), *args, module="vae_jax.evaluate"), fragment)


def test_group_temperatures_one_per_group(run_dir, tmp_path):
  """--group_temperatures: all zeros draws what temperature 0 draws; a wrong count is one line."""
  from vae_jax.errors import UserError
  name, wd = run_dir
  run = inference.load_trained(wd)
  groups = inference.num_groups(run)
  assert groups == {"vae": 1, "vae_ar": 1, "ladder": 2, "hvae": 2}[name]
  zeros = inference.parse_temperatures(run, 1.0, ["0"] * groups)
  a = inference.write_prior_samples(run, tmp_path / "a.png", num=4, seed=0, temperature=zeros)
  b = inference.write_prior_samples(run, tmp_path / "b.png", num=4, seed=0, temperature=0.0)
  np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
  with pytest.raises(UserError, match=f"needs {groups} non-negative values"):
    inference.parse_temperatures(run, 1.0, ["1"] * (groups + 1))


def _read_line_within(stream, prefix: str, *, seconds: float) -> str | None:
  """The first line of `stream` starting with `prefix`, read in a thread, or None after `seconds`."""
  import threading
  found = []

  def read():
    for line in stream:
      if line.startswith(prefix):
        found.append(line)
        return
  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  reader.join(seconds)
  return found[0] if found else None


def test_evaluate_cli_ctrl_c_is_one_line_and_writes_nothing(tmp_path, small_run):
  import signal
  import time
  env = dict(os.environ, XLA_FLAGS="--xla_backend_optimization_level=0", JAX_PLATFORMS="cpu")
  out = tmp_path / "eval.json"
  # `python -m vae_jax.evaluate` with Python's own Ctrl-C handler, as a terminal's foreground job has it:
  # a suite started as a script's background job (`pytest &`) passes SIGINT down ignored.
  launch = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "runpy.run_module('vae_jax.evaluate', run_name='__main__', alter_sys=True)")
  proc = subprocess.Popen([sys.executable, "-c", launch, "--workdir", str(small_run), "--metrics",
                           "is_nll", "--k", "5000000", "--output", str(out)], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    # Interrupt once it is evaluating (its announcement on stderr), plus a second: never during the
    # imports, where a library's bare `except:` around an optional import could swallow the interrupt.
    line = _read_line_within(proc.stderr, "evaluating is_nll", seconds=120)
    assert line and proc.poll() is None, "the evaluation ended or did not start before it could be interrupted"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
  finally:
    proc.kill()
  assert time.monotonic() - sent < 30, f"exited {time.monotonic() - sent:.0f} s after Ctrl-C"
  assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
  assert "nothing was written" in stderr and not out.exists() and not (tmp_path / "eval.json.tmp").exists()
