"""The judge: augmentation, save/load, the CLI's train-then-reuse, and its features as a quality measure.

The MNIST tests train a small judge (a few hundred steps) once per module and check what the
metrics must do with it: FID between two halves of the test set is small and grows with noise
and with blur of increasing strength; a "generator" that drops half the classes loses recall and
class coverage but keeps its precision.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import REPO, SHARED_DATA
from vae_jax import sample_metrics as sm
from vae_jax.errors import UserError
from vae_jax.features import judge as judge_lib


def test_shift_images_translates_each_image_by_its_own_offset_with_zeros_shifted_in():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(6, 5, 7, 2)).astype(np.float32)
  keys = jax.random.split(jax.random.key(1), 6)
  shifted = np.asarray(judge_lib.shift_images(x, keys, 2))
  for i in range(6):
    # The offset the image got, found by trying all 25; exactly one must match.
    matches = []
    for dy in range(-2, 3):
      for dx in range(-2, 3):
        padded = np.pad(x[i], ((2, 2), (2, 2), (0, 0)))
        expected = padded[2 - dy:2 - dy + 5, 2 - dx:2 - dx + 7]
        matches += [(dy, dx)] if np.array_equal(shifted[i], expected) else []
    assert len(matches) == 1, (i, matches)
  assert np.array_equal(np.asarray(judge_lib.shift_images(x, keys, 0)), x)


def test_a_saved_judge_loads_with_the_same_outputs_and_fingerprint(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(40, 16, 16, 3), dtype=np.uint8)
  labels = rng.integers(0, 3, size=40)
  judge = judge_lib.train_judge(images, labels, 3, judge_lib.TrainSettings(steps=3, batch_size=8),
                                log=lambda s: None)
  judge_lib.save_judge(judge, tmp_path / "j")
  loaded = judge_lib.load_judge(tmp_path / "j")
  f0, l0 = judge.outputs(images[:7])
  f1, l1 = loaded.outputs(images[:7])
  assert np.array_equal(f0, f1) and np.array_equal(l0, l1) and f0.shape == (7, 128)
  assert loaded.fingerprint() == judge.fingerprint()
  other = judge_lib.train_judge(images, labels, 3, judge_lib.TrainSettings(steps=3, batch_size=8, seed=1),
                                log=lambda s: None)
  assert other.fingerprint() != judge.fingerprint()
  with pytest.raises(UserError, match="trained on images of shape"):
    loaded.outputs(images[:2, :8, :8])
  with pytest.raises(UserError, match="python -m vae_jax.judge"):
    judge_lib.load_judge(tmp_path / "none")
  (tmp_path / "j" / judge_lib.PARAMS_FILE).write_bytes(b"not msgpack")
  with pytest.raises(UserError, match="does not read"):
    judge_lib.load_judge(tmp_path / "j")


def _judge_cli(*args, cache):
  env = dict(os.environ, VAE_JAX_CACHE=str(cache), JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "vae_jax.judge", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_judge_cli_trains_into_the_cache_then_reuses_it(tmp_path):
  args = ["--config", "default", "--config.data.shapes_num_train=512", "--config.data.shapes_num_test=200",
          "--steps", "40", "--batch_size", "32"]
  first = _judge_cli(*args, cache=tmp_path)
  assert first.returncode == 0, first.stderr
  assert "trained the judge" in first.stdout
  (folder,) = (tmp_path / "judges").iterdir()
  info = json.loads((folder / "judge.json").read_text())
  assert info["test_examples"] == 200 and info["num_classes"] == 3 and info["settings"]["steps"] == 40
  assert f"test accuracy {info['test_accuracy']:.4f}" in first.stdout
  again = _judge_cli(*args, cache=tmp_path)
  assert again.returncode == 0 and "reused the judge" in again.stdout and "judge step" not in again.stdout
  bad = _judge_cli("--config", "default", "--config.data.name=celeb_a", "--config.data.image_size=64",
                   "--config.data.channels=3", "--workdir", str(tmp_path / "x"), cache=tmp_path)
  assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def mnist_judge():
  if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").exists():
    pytest.skip("MNIST files not present")
  from vae_jax.data.idx import load_idx_dir, load_idx_labels
  train_x, test_x = load_idx_dir(SHARED_DATA / "mnist")
  train_y, test_y = load_idx_labels(SHARED_DATA / "mnist", num_train=len(train_x), num_test=len(test_x))
  judge = judge_lib.train_judge(train_x, train_y, 10, judge_lib.TrainSettings(steps=150), log=lambda s: None)
  return judge, test_x, test_y


def _noisy(x, sigma, seed=0):
  rng = np.random.default_rng(seed)
  return np.clip(x + rng.normal(0, 255 * sigma, x.shape), 0, 255).astype(np.uint8)


def _blurred(x, radius):
  return np.stack([np.asarray(Image.fromarray(im[..., 0]).filter(ImageFilter.GaussianBlur(radius)))[..., None]
                   for im in x])


def test_judge_fid_is_small_between_real_halves_and_grows_with_noise_and_blur(mnist_judge):
  judge, test_x, _ = mnist_judge
  order = np.random.default_rng(0).permutation(len(test_x))  # the test set's halves differ in writers
  a, b = test_x[order[:3000]], test_x[order[3000:6000]]
  fa = judge.features(a)
  base = sm.fid(fa, judge.features(b))
  noise = [sm.fid(fa, judge.features(_noisy(b, s))) for s in (0.1, 0.2, 0.4)]
  blur = [sm.fid(fa, judge.features(_blurred(b, r))) for r in (0.5, 1.0, 2.0)]
  assert base < noise[0] / 3 and base < blur[0] / 3, (base, noise, blur)
  assert noise == sorted(noise) and blur == sorted(blur), (noise, blur)


def test_dropping_half_the_classes_costs_recall_and_coverage_not_precision(mnist_judge):
  judge, test_x, test_y = mnist_judge
  order = np.random.default_rng(0).permutation(len(test_x))
  real, fake_pool, pool_y = test_x[order[:3000]], test_x[order[3000:]], test_y[order[3000:]]
  full = fake_pool[:2000]
  half = fake_pool[pool_y < 5][:2000]
  fr = judge.features(real)
  p_full, r_full = sm.precision_recall(fr, judge.features(full))
  p_half, r_half = sm.precision_recall(fr, judge.features(half))
  cov_full = sm.class_histogram(judge.predict(full), 10)["class_coverage"]
  cov_half = sm.class_histogram(judge.predict(half), 10)["class_coverage"]
  assert r_half < r_full - 0.2, (r_full, r_half)
  assert p_half > p_full - 0.05, (p_full, p_half)
  assert cov_full == 1.0 and cov_half == 0.5
