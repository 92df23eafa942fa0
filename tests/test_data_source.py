"""Tests for vae_jax.data.source: array sources, head and gather."""

from __future__ import annotations

import numpy as np
import pytest

from vae_jax.data import source as source_lib


def _images(n: int) -> np.ndarray:
  return np.arange(n * 4, dtype=np.uint8).reshape(n, 2, 2, 1)


class _ListSource:

  def __init__(self, images):
    self.images = list(images)

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return self.images[i]


@pytest.mark.parametrize("wrap", [source_lib.ArraySource, _ListSource])
def test_gather_matches_indexing(wrap):
  images = _images(10)
  source = wrap(images)
  indices = [7, 0, 7, 3]
  np.testing.assert_array_equal(
      source_lib.gather(source, indices), images[indices]
  )


@pytest.mark.parametrize("wrap", [source_lib.ArraySource, _ListSource])
def test_head(wrap):
  images = _images(10)
  source = wrap(images)
  first = source_lib.head(source, 4)
  assert len(first) == 4
  np.testing.assert_array_equal(source_lib.gather(first, range(4)), images[:4])
  assert source_lib.head(source, 0) is source  # 0 means all.
  assert source_lib.head(source, 99) is source
  if wrap is _ListSource:
    with pytest.raises(IndexError):
      first[4]  # pylint: disable=pointless-statement


def test_array_source_rejects_wrong_arrays():
  with pytest.raises(ValueError):
    source_lib.ArraySource(np.zeros((2, 3, 3), np.uint8))
  with pytest.raises(ValueError):
    source_lib.ArraySource(np.zeros((2, 3, 3, 1), np.float32))
