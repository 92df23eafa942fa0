"""Augmentation (vae_jax/data/augment.py): flips and crops as defined, deterministic per seed and
batch position, and exact on resume (the iterator and a whole training run)."""

import numpy as np
import pytest
from scipy import stats

from conftest import data_config, tiny_config
from test_trainer import final_params, max_abs_diff
from vae_jax import checkpointing, data, trainer
from vae_jax.data import augment
from vae_jax.data.source import ArraySource
from vae_jax.errors import UserError


def _source(n=64, h=6, w=5):
  rng = np.random.default_rng(0)
  return ArraySource(rng.integers(0, 256, size=(n, h, w, 2), dtype=np.uint8))


def test_random_crops_are_windows_of_the_reflected_image():
  images = _source(8).images_NHWC
  u_rows = np.array([0.0, 0.99, 0.5, 0.2, 0.0, 0.7, 0.4, 0.9])
  u_cols = np.array([0.0, 0.99, 0.1, 0.6, 0.8, 0.3, 0.5, 0.0])
  got = augment.random_crops(images, 2, u_rows, u_cols)
  for i, image in enumerate(images):
    # Reflect padding by hand: row -k is row k, row h-1+k is row h-1-k.
    idx_r = np.abs(np.arange(-2, 6 + 2))
    idx_r = np.where(idx_r > 5, 10 - idx_r, idx_r)
    idx_c = np.abs(np.arange(-2, 5 + 2))
    idx_c = np.where(idx_c > 4, 8 - idx_c, idx_c)
    padded = image[idx_r][:, idx_c]
    top, left = int(u_rows[i] * 5), int(u_cols[i] * 5)
    np.testing.assert_array_equal(got[i], padded[top:top + 6, left:left + 5])
  np.testing.assert_array_equal(got[0], np.pad(images[0], ((2, 2), (2, 2), (0, 0)), mode="reflect")[:6, :5])


def test_flips_and_shifts_are_uniform_and_a_function_of_seed_and_position():
  aug = augment.Augmentation(flip=True, crop_pad=0, seed=3)
  images = _source(64).images_NHWC
  flipped = []
  for b in range(40):
    out = aug(b, {"image": images})["image"]
    mirrored = np.all(out == images[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(mirrored | np.all(out == images, axis=(1, 2, 3)))  # each image as it was, or mirrored
    flipped.append(mirrored)
  flipped = np.concatenate(flipped)
  assert abs(flipped.mean() - 0.5) < 4 * np.sqrt(0.25 / len(flipped))
  np.testing.assert_array_equal(aug(7, {"image": images})["image"], aug(7, {"image": images})["image"])
  assert not np.array_equal(aug(7, {"image": images})["image"], aug(8, {"image": images})["image"])
  other = augment.Augmentation(flip=True, crop_pad=0, seed=4)
  assert not np.array_equal(aug(7, {"image": images})["image"], other(7, {"image": images})["image"])
  # Shifts: every offset 0..2P equally likely.
  shift = augment.Augmentation(flip=False, crop_pad=2, seed=0)
  offsets = np.floor(augment.uniforms(0, "augment", np.arange(5000), 3)[:, 1] * 5).astype(int)
  assert stats.chisquare(np.bincount(offsets, minlength=5)).pvalue > 1e-4
  out = shift(0, {"image": images, "label": np.arange(64)})
  assert out["image"].shape == images.shape and np.array_equal(out["label"], np.arange(64))


def test_augmented_iterator_resumes_exactly_and_off_means_untouched():
  source = _source(64)
  aug = augment.Augmentation(flip=True, crop_pad=2, seed=1)
  it = data.train_iterator(source, batch_size=8, seed=1, augment=aug)
  for _ in range(11):  # into the second epoch
    next(it)
  state = it.get_state()
  expected = [next(it)["image"] for _ in range(4)]
  again = data.train_iterator(source, batch_size=8, seed=1, augment=aug)
  again.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(again)["image"], want)
  plain = data.train_iterator(source, batch_size=8, seed=1)
  augmented = data.train_iterator(source, batch_size=8, seed=1, augment=aug)
  a, b = next(plain)["image"], next(augmented)["image"]
  assert not np.array_equal(a, b)
  assert augment.Augmentation.from_config(data_config(), seed=0) is None


def test_an_augmented_run_resumes_to_the_same_parameters(tmp_path):
  config = tiny_config(**{"data.augment_flip": True, "data.augment_crop": 3})
  trainer.train_and_evaluate(config, tmp_path / "straight")
  trainer.train_and_evaluate(config, tmp_path / "resumed", stop_after_step=17)
  assert checkpointing.Checkpoints(tmp_path / "resumed").steps()[-1] == 17
  trainer.train_and_evaluate(config, tmp_path / "resumed")
  a = final_params(tmp_path / "straight")
  assert max_abs_diff(a, final_params(tmp_path / "resumed")) == 0.0
  trainer.train_and_evaluate(tiny_config(), tmp_path / "plain")  # augmentation did change the run
  assert max_abs_diff(a, final_params(tmp_path / "plain")) > 1e-4


@pytest.mark.parametrize("overrides, fragment", [
    ({"augment_crop": 28}, "data.augment_crop=28"),
    ({"augment_crop": -1}, "data.augment_crop=-1"),
    ({"augment_flip": True, "missing": "mcar"}, "use one or the other"),
])
def test_bad_augmentation_settings_are_one_clear_error(overrides, fragment):
  with pytest.raises(UserError, match=fragment):
    data.load_datasets(data_config(**overrides))
