"""Tests for vae_jax.data.tfds_source, with TFDS's mock data (no network).

`tfds.testing.mock_data(policy=USE_CODE)` makes `tfds.data_source` return
random records shaped like the real dataset's features, for every split, so
these tests check our record mapping, resizing and split limits, not TFDS.
"""

from __future__ import annotations

import numpy as np
import pytest

from vae_jax.data import load_datasets, tfds_source, train_iterator
from conftest import data_config
from vae_jax.errors import UserError




tfds = pytest.importorskip("tensorflow_datasets")


def _mock(num_examples: int = 6):
  return tfds.testing.mock_data(
      num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE
  )


@pytest.mark.parametrize(
    "name,size,channels",
    [
        ("mnist", 28, 1),
        ("fashion_mnist", 28, 1),
        ("cifar10", 32, 3),
        ("celeb_a", 64, 3),  # Mock records are 218x178x3, like the real ones.
        ("celeb_a", 32, 1),
    ],
)
def test_load_through_mock(name, size, channels):
  """Each split's example i is TFDS record i: unchanged at the native size; centre-cropped and
  resized otherwise (the mean intensity, in ITU-R 601 grey for one channel, is kept to rounding)."""
  with _mock(6):
    datasets = load_datasets(
        data_config(name=name, image_size=size, channels=channels)
    )
    assert datasets.image_shape == (size, size, channels)
    for split, source in (("train", datasets.train), ("test", datasets.test)):
      records = tfds.data_source(name, split=split)
      assert len(source) == len(records) == 6
      for i in (0, 5):
        raw = np.asarray(records[i]["image"])
        got = source[i]
        assert got.dtype == np.uint8 and got.shape == (size, size, channels)
        if raw.shape == got.shape:
          np.testing.assert_array_equal(got, raw)
          continue
        top = (raw.shape[0] - raw.shape[1]) // 2
        crop = raw[top:top + raw.shape[1]].astype(np.float64)
        if channels == 1:
          crop = crop @ np.array([0.299, 0.587, 0.114])
        assert abs(got.mean() - crop.mean()) < 1.0, (got.mean(), crop.mean())
    batch = next(train_iterator(datasets.train, batch_size=4, seed=0))
    assert batch["image"].shape == (4, size, size, channels)


def test_celeb_a_is_centre_cropped_then_resized():
  with _mock(2):
    records = tfds.data_source("celeb_a", split="train")
    raw = np.asarray(records[0]["image"])
    datasets = load_datasets(
        data_config(name="celeb_a", image_size=178, channels=3)
    )
  assert raw.shape == (218, 178, 3)
  # At 178 no resampling happens: exactly the central 178x178 square.
  np.testing.assert_array_equal(datasets.train[0], raw[20:198])


def test_mnist_records_pass_through_unchanged():
  with _mock(3):
    records = tfds.data_source("mnist", split="test")
    datasets = load_datasets(data_config(name="mnist"))
    np.testing.assert_array_equal(datasets.test[2], records[2]["image"])


def test_example_limits_use_split_slices():
  """num_train_examples = 4 keeps the split's first 4 records, in order."""
  with _mock(10):
    datasets = load_datasets(
        data_config(
            name="cifar10",
            image_size=32,
            channels=3,
            num_train_examples=4,
            num_test_examples=3,
        )
    )
    train, test = (tfds.data_source("cifar10", split=s) for s in ("train", "test"))
    assert (len(datasets.train), len(datasets.test)) == (4, 3)
    for i in range(4):
      np.testing.assert_array_equal(datasets.train[i], train[i]["image"])
    np.testing.assert_array_equal(datasets.test[2], test[2]["image"])


def test_mnist_at_wrong_size():
  with _mock(2):
    with pytest.raises(
        UserError, match="image_size=28 --config.data.channels=1"
    ):
      load_datasets(data_config(name="mnist", image_size=32))


def _raise(error: BaseException):
  def data_source(*args, **kwargs):
    raise error

  return data_source


def test_missing_tensorflow_becomes_user_error(monkeypatch):
  error = ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
  monkeypatch.setattr(tfds, "data_source", _raise(error))
  with pytest.raises(UserError, match="needs TensorFlow.*IDX files"):
    tfds_source.open_split("mnist", "train", "")


def test_tfds_failures_become_user_errors(monkeypatch):
  monkeypatch.setattr(tfds, "data_source", _raise(ConnectionError("no route")))
  with pytest.raises(
      UserError, match="ConnectionError: no route.*tfds_data_dir"
  ):
    load_datasets(data_config(name="cifar10", image_size=32, channels=3))


def test_dir_and_tfds_data_dir_conflict():
  with pytest.raises(UserError, match="set only one"):
    load_datasets(data_config(name="celeb_a", dir="/a", tfds_data_dir="/b"))
