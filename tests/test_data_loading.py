"""Tests for vae_jax.data.loading: `load_datasets` dispatch and checks."""

from __future__ import annotations

import dataclasses
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vae_jax.data import load_datasets
from vae_jax.data.shapes import ShapesSource
from conftest import data_config
from vae_jax.errors import UserError




def _write_idx_dir(directory: Path, n_train: int, n_test: int) -> np.ndarray:
  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
  for name, images in (("train", train), ("t10k", train[:n_test])):
    header = struct.pack(">IIII", 0x803, len(images), 28, 28)
    path = directory / f"{name}-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + images.tobytes()))
  return train


def test_unknown_name_lists_valid_ones():
  with pytest.raises(
      UserError, match="shapes, mnist, fashion_mnist, cifar10, celeb_a, folder"
  ):
    load_datasets(data_config(name="imagenet"))


def test_shapes_default():
  """The default data section gives the procedural shapes: the train and test renderings of their
  own splits (disjoint draws), at the config's counts and size, in a frozen Datasets."""
  datasets = load_datasets(
      data_config(shapes_num_train=300, shapes_num_test=50)
  )
  assert (len(datasets.train), len(datasets.test)) == (300, 50)
  train = ShapesSource.generate("train", 300, 28)
  test = ShapesSource.generate("test", 50, 28)
  for i in (0, 17, 299):
    np.testing.assert_array_equal(datasets.train[i], train[i])
  np.testing.assert_array_equal(datasets.test[49], test[49])
  assert not any(np.array_equal(datasets.test[i], datasets.train[i]) for i in range(50))
  assert datasets.image_shape == datasets.train[0].shape
  with pytest.raises(dataclasses.FrozenInstanceError):
    datasets.name = "x"  # type: ignore[misc]


def test_shapes_example_limits():
  datasets = load_datasets(
      data_config(
          shapes_num_train=300,
          shapes_num_test=50,
          num_train_examples=20,
          num_test_examples=500,
      )
  )
  assert (len(datasets.train), len(datasets.test)) == (20, 50)
  full = load_datasets(data_config(shapes_num_train=300, shapes_num_test=50))
  np.testing.assert_array_equal(datasets.train[19], full.train[19])
  assert datasets.train.factors(19) == full.train.factors(19)


def test_idx_dir_and_example_limits(tmp_path):
  train = _write_idx_dir(tmp_path, 30, 10)
  datasets = load_datasets(
      data_config(name="mnist", dir=str(tmp_path), num_train_examples=12)
  )
  assert (len(datasets.train), len(datasets.test)) == (12, 10)
  np.testing.assert_array_equal(datasets.train[11][..., 0], train[11])


def test_wrong_shape_names_the_fix(tmp_path):
  _write_idx_dir(tmp_path, 4, 2)
  config = data_config(name="fashion_mnist", dir=str(tmp_path), image_size=32)
  with pytest.raises(
      UserError,
      match=r"fashion_mnist images are 28x28x1 but the config asks for"
      r" 32x32x1; set --config.data.image_size=28 --config.data.channels=1",
  ):
    load_datasets(config)
  with pytest.raises(UserError, match="channels=1"):
    load_datasets(data_config(name="shapes", channels=3, shapes_num_train=5))


def test_missing_idx_dir(tmp_path):
  with pytest.raises(UserError, match="--config.data.dir"):
    load_datasets(data_config(name="mnist", dir=str(tmp_path / "missing")))


def test_folder(tmp_path):
  """A folder's images, resized and split: file i is a uniform red of value 20 i, so every
  loaded image reads back as one file, and train and test together hold each file once."""
  for i in range(10):
    Image.new("RGB", (20 + i, 30), (i * 20, 0, 0)).save(tmp_path / f"{i}.png")
  datasets = load_datasets(
      data_config(
          name="folder",
          dir=str(tmp_path),
          image_size=8,
          channels=3,
          test_fraction=0.3,
      )
  )
  assert datasets.image_shape == (8, 8, 3) and len(datasets.test) >= 1
  files = []
  for source in (datasets.train, datasets.test):
    for j in range(len(source)):
      image = source[j].astype(int)
      assert np.all(image[..., 0] == image[0, 0, 0]) and not image[..., 1:].any()
      files.append(image[0, 0, 0] // 20)
  assert sorted(files) == list(range(10))
  with pytest.raises(UserError, match="--config.data.dir"):
    load_datasets(data_config(name="folder"))


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("channels", 2, "channels=1"),
        ("image_size", 0, "image_size"),
        ("test_fraction", 1.0, r"\[0, 1\)"),
        ("num_train_examples", -1, "negative"),
        ("shapes_num_train", 0, "must be positive"),
    ],
)
def test_bad_values(field, value, message):
  with pytest.raises(UserError, match=message):
    load_datasets(data_config(**{field: value}))
