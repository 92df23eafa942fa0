"""Tests for vae_jax.data.idx: the IDX (MNIST file format) reader."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from vae_jax.data import idx
from vae_jax.errors import UserError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _idx_bytes(magic: int, array: np.ndarray) -> bytes:
  """An IDX file for `array`, built by hand from the format description."""
  header = struct.pack(">I", magic) + b"".join(
      struct.pack(">I", d) for d in array.shape
  )
  return header + array.astype(np.uint8).tobytes()


def _random_images(n: int, h: int = 5, w: int = 4, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)


@pytest.mark.parametrize("gzipped", [True, False])
def test_read_images_round_trip(tmp_path, gzipped):
  images = _random_images(7)
  data = _idx_bytes(0x803, images)
  path = tmp_path / "x-idx3-ubyte"
  path.write_bytes(gzip.compress(data) if gzipped else data)
  got = idx.read_images(path)
  assert got.dtype == np.uint8
  assert got.shape == (7, 5, 4, 1)
  np.testing.assert_array_equal(got[..., 0], images)


def test_read_labels_round_trip(tmp_path):
  labels = np.array([5, 0, 4, 1, 9], np.uint8)
  path = tmp_path / "labels.gz"
  path.write_bytes(gzip.compress(_idx_bytes(0x801, labels)))
  np.testing.assert_array_equal(idx.read_labels(path), labels)


def test_bad_magic(tmp_path):
  path = tmp_path / "bad.gz"
  path.write_bytes(gzip.compress(_idx_bytes(0x801, np.zeros(4, np.uint8))))
  with pytest.raises(UserError, match=r"bad\.gz has IDX magic 0x00000801"):
    idx.read_images(path)


def test_truncated_body(tmp_path):
  data = _idx_bytes(0x803, _random_images(3))
  path = tmp_path / "short.gz"
  path.write_bytes(gzip.compress(data[:-5]))
  with pytest.raises(UserError, match=r"short\.gz is truncated"):
    idx.read_images(path)


def test_extra_bytes(tmp_path):
  path = tmp_path / "long"
  path.write_bytes(_idx_bytes(0x803, _random_images(3)) + b"\0")
  with pytest.raises(UserError, match="too long"):
    idx.read_images(path)


def test_truncated_header(tmp_path):
  path = tmp_path / "header"
  path.write_bytes(struct.pack(">II", 0x803, 3))
  with pytest.raises(UserError, match="header"):
    idx.read_images(path)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda gz: gz[: len(gz) // 2],  # Cut-off download.
        lambda gz: gz[:10] + b"\xff" * 20 + gz[30:],  # Corrupt deflate stream.
    ],
)
def test_bad_gzip(tmp_path, mangle):
  gz = gzip.compress(_idx_bytes(0x803, _random_images(50, 10, 10)))
  path = tmp_path / "broken.gz"
  path.write_bytes(mangle(gz))
  with pytest.raises(UserError, match=r"broken\.gz is not a valid gzip file"):
    idx.read_images(path)


def _write_mnist_dir(directory: Path, names: tuple[str, str]) -> tuple:
  train, test = _random_images(6, 28, 28, seed=1), _random_images(
      2, 28, 28, seed=2
  )
  for name, images in zip(names, (train, test)):
    data = _idx_bytes(0x803, images)
    (directory / name).write_bytes(
        gzip.compress(data) if name.endswith(".gz") else data
    )
  return train, test


@pytest.mark.parametrize(
    "names",
    [
        ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
        ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"),
        ("train-images.idx3-ubyte", "t10k-images.idx3-ubyte"),
    ],
)
def test_load_idx_dir_accepts_name_variants(tmp_path, names):
  train, test = _write_mnist_dir(tmp_path, names)
  got_train, got_test = idx.load_idx_dir(tmp_path)
  np.testing.assert_array_equal(got_train[..., 0], train)
  np.testing.assert_array_equal(got_test[..., 0], test)


def test_load_idx_dir_missing_file(tmp_path):
  (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
      gzip.compress(_idx_bytes(0x803, _random_images(1)))
  )
  with pytest.raises(
      UserError, match="has no t10k-images-idx3-ubyte.gz.*--config.data.dir"
  ):
    idx.load_idx_dir(tmp_path)


def test_load_idx_dir_not_a_folder(tmp_path):
  with pytest.raises(UserError, match="is not a folder"):
    idx.load_idx_dir(tmp_path / "nope")


def _independent_decode(path: Path, header_len: int) -> np.ndarray:
  with gzip.open(path, "rb") as f:
    return np.frombuffer(f.read()[header_len:], dtype=np.uint8)


@pytest.mark.parametrize("folder", ["mnist", "fashion-mnist"])
def test_real_files(folder):
  directory = SHARED_DATA / folder
  if not (directory / "train-images-idx3-ubyte.gz").is_file():
    pytest.skip(f"{directory} not present")
  train, test = idx.load_idx_dir(directory)
  assert train.shape == (60000, 28, 28, 1) and train.dtype == np.uint8
  assert test.shape == (10000, 28, 28, 1) and test.dtype == np.uint8
  for images, name in ((train, "train"), (test, "t10k")):
    body = _independent_decode(directory / f"{name}-images-idx3-ubyte.gz", 16)
    assert images.sum(dtype=np.int64) == body.sum(dtype=np.int64)
    np.testing.assert_array_equal(images.reshape(-1), body)
  labels = idx.read_labels(directory / "train-labels-idx1-ubyte.gz")
  np.testing.assert_array_equal(
      labels, _independent_decode(directory / "train-labels-idx1-ubyte.gz", 8)
  )
  if folder == "mnist":  # Published first labels (shared/data/README.md).
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
  else:  # Fashion-MNIST is exactly balanced.
    assert np.bincount(labels).tolist() == [6000] * 10
