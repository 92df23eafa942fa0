"""Sample quality end to end: evaluate --metrics fid,... on a run, --fid_dirs on two folders, keep-best.

The judge is trained into a temporary VAE_JAX_CACHE on first use (a few steps on the shapes data).
"""

import json
import os
import subprocess
import sys
import types

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, tiny_config
from vae_jax import evaluate, inference, keep_best, trainer
from vae_jax.features import judge as judge_lib

QUALITY = ["fid", "kid", "precision_recall", "class_coverage"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  path = tmp_path_factory.mktemp("cache")
  old = os.environ.get("VAE_JAX_CACHE")
  os.environ["VAE_JAX_CACHE"] = str(path)
  yield path
  if old is None:
    del os.environ["VAE_JAX_CACHE"]
  else:
    os.environ["VAE_JAX_CACHE"] = old


@pytest.fixture(scope="module")
def run_dir(cache, tmp_path_factory):
  wd = tmp_path_factory.mktemp("vae") / "run"
  trainer.train_and_evaluate(tiny_config(num_train_steps=20), wd)
  return wd


def _evaluate(wd, **quality):
  return evaluate.evaluate_run(wd, QUALITY, quality={"num_samples": 300, "judge_steps": 40, **quality})


def test_evaluate_trains_the_judge_once_and_reports_every_quality_figure(run_dir, cache, capsys):
  first = _evaluate(run_dir)
  assert "training the judge" in capsys.readouterr().out
  for key in ("fid", "kid", "kid_std", "precision", "recall", "class_entropy", "class_coverage"):
    assert np.isfinite(first[key]), key
  assert first["features"] == "judge" and first["quality_num_samples"] == 300
  assert first["quality_num_real"] == 150 and 0 < first["judge_test_accuracy"] <= 1
  assert 0 <= first["precision"] <= 1 and 0 <= first["recall"] <= 1 and first["fid"] > 0
  assert 0 <= first["class_entropy"] <= np.log(3) + 1e-9
  (judge_dir,) = (cache / "judges").iterdir()
  assert judge_lib.is_judge_dir(judge_dir)
  again = _evaluate(run_dir)
  assert "training the judge" not in capsys.readouterr().out
  assert again["fid"] == first["fid"] and again["recall"] == first["recall"]  # same draws, same judge


def test_at_temperature_0_the_figures_are_those_of_one_image(run_dir, cache):
  """All 300 samples at T = 0 decode the prior mean: one image with features f. Then
  FID = ||mu_real - f||^2 + tr Sigma_real (the samples' covariance is 0), each sample's k-NN
  radius among them is 0 (recall 0), they are all in the real manifold or all out (precision 0 or
  1), and the judge gives them one class (entropy 0)."""
  from vae_jax import data
  from vae_jax.features.extractors import FEATURES
  cold = _evaluate(run_dir, temperature=0.0)
  run = inference.load_trained(run_dir)
  network = FEATURES.get("judge")(run.config.data, None, judge_steps=40)  # the one _evaluate trained
  test = data.load_datasets(run.config.data).test
  real = np.asarray(network.outputs(np.stack([test[i] for i in range(len(test))]))[0], np.float64)
  image, _ = keep_best.draw_candidates(run, 1, seed=5, temperature=0.0)  # any key: the prior mean
  f = np.asarray(network.outputs(image)[0][0], np.float64)
  want = np.sum(np.square(real.mean(0) - f)) + np.trace(np.cov(real, rowvar=False))
  assert cold["fid"] == pytest.approx(want, rel=1e-2)  # 1%: either covariance normalisation
  assert cold["recall"] == pytest.approx(0.0, abs=1e-9) and cold["precision"] in (0.0, 1.0)
  assert cold["class_entropy"] == pytest.approx(0.0, abs=1e-9)


def test_only_process_0_computes_sample_quality(monkeypatch):
  """The other processes of a multi-host run return nothing and build no feature network."""
  from vae_jax.evaluators import sample_quality
  evaluator = sample_quality.SampleQualityEvaluator(types.SimpleNamespace(config=tiny_config()))
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  assert evaluator(None, None, 0) == {} and evaluator.network is None


def _write_folder(folder, images):
  folder.mkdir(parents=True)
  for i, image in enumerate(images):
    Image.fromarray(image[..., 0]).save(folder / f"{i:04d}.png")


def _cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "vae_jax.evaluate", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_fid_dirs_is_zero_for_one_folder_twice_and_grows_with_noise(run_dir, cache, tmp_path):
  from vae_jax import data
  _evaluate(run_dir)  # the judge exists after this
  (judge_dir,) = (cache / "judges").iterdir()
  test = data.load_datasets(inference.load_trained(run_dir).config.data).test
  images = np.stack([test[i] for i in range(120)])
  rng = np.random.default_rng(0)
  noisy = np.clip(images + rng.normal(0, 60, images.shape), 0, 255).astype(np.uint8)
  _write_folder(tmp_path / "a", images)
  _write_folder(tmp_path / "b", images[::-1])
  _write_folder(tmp_path / "n", noisy)
  same = _cli("--fid_dirs", str(tmp_path / "a"), str(tmp_path / "b"), "--features", "judge",
              "--judge_dir", str(judge_dir), "--output", str(tmp_path / "same.json"))
  assert same.returncode == 0, same.stderr
  rec = json.loads((tmp_path / "same.json").read_text())
  assert abs(rec["fid"]) < 1e-6 and rec["precision"] == rec["recall"] == 1.0 and rec["num_images_a"] == 120
  far = _cli(f"--fid_dirs={tmp_path / 'a'},{tmp_path / 'n'}", "--features=judge", f"--judge_dir={judge_dir}",
             f"--output={tmp_path / 'far.json'}")
  assert far.returncode == 0, far.stderr
  assert json.loads((tmp_path / "far.json").read_text())["fid"] > 1.0
  for bad in (["--fid_dirs", str(tmp_path / "a")], ["--fid_dirs", str(tmp_path / "a"), str(tmp_path / "zz"),
                                                   "--features", "judge", f"--judge_dir={judge_dir}"],
              ["--fid_dirs", str(tmp_path / "a"), str(tmp_path / "b"), "--features", "judge"]):
    proc = _cli(*bad)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr, bad


def test_keep_best_keeps_the_highest_judge_scores_and_elbo_prefers_data_to_noise(run_dir, cache):
  from vae_jax import data
  from vae_jax.features.extractors import FEATURES
  _evaluate(run_dir)
  run = inference.load_trained(run_dir)
  network = FEATURES.get("judge")(run.config.data, None)
  candidates, labels = keep_best.draw_candidates(run, 200, seed=3)
  scores = keep_best.scores("judge", run, candidates, labels, network=network, test_source=None, seed=3)
  probs = np.asarray(jax.nn.softmax(network.outputs(candidates)[1], axis=1)).max(axis=1)
  np.testing.assert_allclose(scores, probs, rtol=1e-6)
  kept, index = keep_best.keep_top(candidates, scores, 20)
  rest = np.setdiff1d(np.arange(200), index)
  assert scores[index].min() >= scores[rest].max() and np.array_equal(kept, candidates[index])
  test = data.load_datasets(run.config.data).test
  real = np.stack([test[i] for i in range(64)])
  noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
  elbo = keep_best.scores("elbo", run, np.concatenate([real, noise]), None, network=None, test_source=None, seed=0)
  assert elbo[:64].min() > elbo[64:].max()
  realism = keep_best.scores("realism", run, np.concatenate([real, noise]), None, network=network,
                             test_source=test, seed=0)
  assert np.median(realism[:64]) > np.median(realism[64:])


def test_sample_py_keeps_the_best_of_the_candidates(run_dir, cache, tmp_path):
  _evaluate(run_dir)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = tmp_path / "best.png"
  proc = subprocess.run([sys.executable, "sample.py", f"--workdir={run_dir}", "--num_samples=9",
                         "--candidates=90", "--keep_by=realism", f"--output={out}"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  # The grid is the 9 candidates of the highest realism among the 90 that --seed 0 draws, best first.
  from vae_jax import data, images
  from vae_jax.features.extractors import FEATURES
  run = inference.load_trained(run_dir)
  candidates, labels = keep_best.draw_candidates(run, 90, seed=0)
  network = FEATURES.get(run.config.quality.features)(run.config.data, None,
                                                      judge_steps=int(run.config.quality.judge_steps))
  scores = keep_best.scores("realism", run, candidates, labels, network=network,
                            test_source=data.load_datasets(run.config.data).test, seed=0)
  order = np.argsort(-scores, kind="stable")
  assert scores[order[8]] > scores[order[9]]  # the 9 best are one set, not a tie at the edge
  want = np.asarray(images.grid_image(candidates[order[:9]] / 255.0))
  np.testing.assert_array_equal(np.asarray(Image.open(out)), want)
  worst = np.asarray(images.grid_image(candidates[order[::-1][:9]] / 255.0))
  assert not np.array_equal(want, worst)  # the scores and candidates tell the grids apart
  proc = subprocess.run([sys.executable, "sample.py", f"--workdir={run_dir}", "--num_samples=9",
                         "--candidates=5", f"--output={tmp_path / 'x.png'}"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and "at least --num_samples" in proc.stderr and not (tmp_path / "x.png").exists()
