"""Tests for vae_jax.data.pipeline: training and evaluation batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vae_jax.data import pipeline
from vae_jax.data.source import ArraySource
from vae_jax.errors import UserError


def _numbered(n: int) -> ArraySource:
  """Example i is a 2x3x1 image whose pixels encode i (i < 65536)."""
  images = np.zeros((n, 2, 3, 1), np.uint8)
  images[:, 0, 0, 0] = np.arange(n) // 256
  images[:, 0, 1, 0] = np.arange(n) % 256
  return ArraySource(images)


class _LazySource:
  """A source without a backing array (like TFDS): one record at a time."""

  def __init__(self, n: int):
    self.inner = _numbered(n)

  def __len__(self) -> int:
    return len(self.inner)

  def __getitem__(self, i: int) -> np.ndarray:
    return self.inner.images_NHWC[i].copy()


def _ids(batch: dict) -> list[int]:
  image = batch["image"]
  return (image[:, 0, 0, 0].astype(int) * 256 + image[:, 0, 1, 0]).tolist()


def _take(iterator, num_batches: int) -> list[list[int]]:
  return [_ids(next(iterator)) for _ in range(num_batches)]


@pytest.mark.parametrize("make_source", [_numbered, _LazySource])
def test_every_epoch_is_a_new_permutation(make_source):
  n, batch_size = 48, 8
  batches = _take(
      pipeline.train_iterator(make_source(n), batch_size=batch_size, seed=3),
      3 * n // batch_size,
  )
  epochs = [sum(batches[e * 6 : (e + 1) * 6], []) for e in range(3)]
  for epoch in epochs:
    assert sorted(epoch) == list(range(n))
  assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
  assert epochs[0] != list(range(n))  # Actually shuffled.


def test_remainder_is_dropped_per_epoch():
  n, batch_size = 50, 8  # 6 whole batches per epoch, 2 examples dropped.
  iterator = pipeline.train_iterator(
      _numbered(n), batch_size=batch_size, seed=0
  )
  batches = _take(iterator, 30)
  for epoch in range(5):
    ids = sum(batches[epoch * 6 : (epoch + 1) * 6], [])
    assert len(set(ids)) == 48 and set(ids) <= set(range(n))
  # Over many epochs every example is seen (different ones are dropped).
  assert set(sum(batches, [])) == set(range(n))


def test_batch_format():
  """A batch is {"image": uint8 [B, H, W, C]} of B distinct examples of the source, unchanged."""
  source = _numbered(20)
  batch = next(pipeline.train_iterator(source, batch_size=4, seed=0))
  assert set(batch) == {"image"} and batch["image"].dtype == np.uint8
  ids = batch["image"][:, 0, 0, 0].astype(int) * 256 + batch["image"][:, 0, 1, 0]
  assert len(set(ids.tolist())) == 4 and all(0 <= i < 20 for i in ids)
  np.testing.assert_array_equal(batch["image"], source.images_NHWC[ids])


def test_deterministic_in_seed():
  source = _numbered(64)
  a = _take(pipeline.train_iterator(source, batch_size=16, seed=7), 10)
  b = _take(pipeline.train_iterator(source, batch_size=16, seed=7), 10)
  c = _take(pipeline.train_iterator(source, batch_size=16, seed=8), 10)
  assert a == b and a != c


def test_seeds_do_not_share_epochs():
  # A naive per-epoch seed of seed + epoch (grain's shuffle folds seeds that
  # way) would make seed 1's first epoch equal seed 0's second.
  source = _numbered(32)
  seed0 = _take(pipeline.train_iterator(source, batch_size=32, seed=0), 2)
  seed1 = _take(pipeline.train_iterator(source, batch_size=32, seed=1), 1)
  assert seed0[1] != seed1[0]


@pytest.mark.parametrize("make_source", [_numbered, _LazySource])
def test_state_resumes_exactly(make_source):
  source = make_source(40)
  iterator = pipeline.train_iterator(source, batch_size=8, seed=11)
  _take(iterator, 7)  # Past the first epoch boundary (5 batches per epoch).
  state = json.loads(json.dumps(iterator.get_state()))
  expected = _take(iterator, 9)

  fresh = pipeline.train_iterator(source, batch_size=8, seed=11)
  fresh.set_state(state)
  assert _take(fresh, 9) == expected

  iterator.set_state(state)  # Rewinding the same iterator works too.
  assert _take(iterator, 9) == expected


def test_state_at_start():
  source = _numbered(40)
  iterator = pipeline.train_iterator(source, batch_size=8, seed=1)
  state = iterator.get_state()
  expected = _take(iterator, 3)
  iterator.set_state(state)
  assert _take(iterator, 3) == expected


def test_bad_batch_sizes():
  with pytest.raises(UserError, match="larger than the training set"):
    pipeline.train_iterator(_numbered(10), batch_size=11, seed=0)
  with pytest.raises(UserError, match="must be positive"):
    pipeline.train_iterator(_numbered(10), batch_size=0, seed=0)
  with pytest.raises(UserError, match="must be positive"):
    pipeline.eval_batches(_numbered(10), 0)


@pytest.mark.parametrize("make_source", [_numbered, _LazySource])
@pytest.mark.parametrize("n,batch_size", [(10, 4), (12, 4), (3, 8), (1, 1)])
def test_eval_batches_cover_everything_once(make_source, n, batch_size):
  batches = list(pipeline.eval_batches(make_source(n), batch_size))
  assert len(batches) == -(-n // batch_size)
  seen = []
  for batch in batches:
    assert batch["image"].shape == (batch_size, 2, 3, 1)
    assert batch["image"].dtype == np.uint8 and batch["mask"].dtype == bool
    ids = np.array(_ids(batch))
    seen += ids[batch["mask"]].tolist()
    assert (batch["image"][~batch["mask"]] == 0).all()
  assert seen == list(range(n))
  assert sum(int(b["mask"].sum()) for b in batches) == n
  num_valid_in_last = n - (len(batches) - 1) * batch_size
  assert batches[-1]["mask"].sum() == num_valid_in_last
  assert batches[-1]["mask"][:num_valid_in_last].all()


def test_eval_batches_of_empty_source():
  assert list(pipeline.eval_batches(_numbered(0), 4)) == []
