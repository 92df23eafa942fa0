"""Batches for training and evaluation, as grain pipelines over a source.

Both pipelines run over example *indices*, not records: a grain MapDataset
yields each batch's indices as one array, and one `map` turns it into images
with `source.gather`, a single numpy fancy-index for in-memory sources.

Labels. When the source has labels (`source.has_labels`), every batch also
has "label": int32 [B], gathered with the same indices as the images, so
switching labels on changes neither the order nor the images. Padding rows
of eval batches get label 0 (and mask False).

Missing data. A source with missing pixels (`missing.MissingSource`) also
puts "observed": bool [B, H, W, 1] in every batch (False in padding rows).

Training order. grain's own `MapDataset.shuffle(seed).batch(...).repeat()`
does give a fresh permutation every epoch (shuffle folds `seed + epoch` into
its per-index permutation; batch before repeat keeps batches inside an
epoch), but it permutes one index per Python call, about 20 us per image:
only ~45k images/s on 2 cores, slower than a GPU trains a small VAE. So the
index source here, `EpochBatches`, draws each epoch's whole permutation at
once with numpy (seeded by (seed, epoch)) and slices batches from it, with
the same semantics: every epoch is a new permutation, cut into whole batches,
the remainder dropped, no batch spanning two epochs.

The iterator is grain's own `DatasetIterator` over that MapDataset:
`get_state()` is a small JSON dict (the index of the next batch) and
`set_state()` resumes exactly, also on a fresh iterator built with the same
arguments. Orders depend on numpy's `Generator.permutation`, which numpy keeps
stable across versions but does not guarantee.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from typing import Iterator

import grain
import numpy as np

from vae_jax.data.source import ArraySource, Source, gather_examples
from vae_jax.errors import UserError

# Background threads computing batches ahead of the consumer; buffers count
# batches. An in-memory gather takes microseconds, so one thread is plenty.
# Records decoded one by one (TFDS: PNG/JPEG decode, CelebA's resize, ~1 ms
# each) get a thread per core; PIL releases the GIL while it works.
_IN_MEMORY_READ = grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)
_DECODE_THREADS = max(4, os.cpu_count() or 1)
_DECODING_READ = grain.ReadOptions(
    num_threads=_DECODE_THREADS, prefetch_buffer_size=2 * _DECODE_THREADS
)


def _read_options(source: Source) -> grain.ReadOptions:
  return _IN_MEMORY_READ if isinstance(source, ArraySource) else _DECODING_READ


def _seed_entropy(seed: int) -> int:
  """Any int seed (negative too) as a well-mixed non-negative 64-bit int."""
  digest = hashlib.sha256(f"vae_jax.train_iterator:{seed}".encode()).digest()
  return int.from_bytes(digest[:8], "big")


class EpochBatches(grain.MapDataset):
  """Endless batches of shuffled example indices, a new permutation per epoch.

  Element b is the int64 array of indices [batch_size] for batch b: epoch
  b // batches_per_epoch, slice b % batches_per_epoch of that epoch's
  permutation of range(num_examples). A pure function of (b, num_examples,
  batch_size, seed), so grain can fetch batches in any order, in threads.
  """

  def __init__(self, num_examples: int, batch_size: int, seed: int):
    super().__init__()
    self._num_examples = num_examples
    self._batch_size = batch_size
    self._batches_per_epoch = num_examples // batch_size
    self._entropy = _seed_entropy(seed)
    # Prefetch threads may straddle an epoch boundary: keep two epochs.
    self._permutation = functools.lru_cache(maxsize=2)(self._draw_permutation)

  def _draw_permutation(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([self._entropy, epoch])
    return rng.permutation(self._num_examples)

  def __len__(self) -> int:
    return sys.maxsize  # Endless, like grain's repeat().

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    epoch, batch = divmod(index, self._batches_per_epoch)
    start = batch * self._batch_size
    return self._permutation(epoch)[start : start + self._batch_size]

  def __str__(self) -> str:
    return (
        f"EpochBatches(num_examples={self._num_examples},"
        f" batch_size={self._batch_size})"
    )


def _indices_to_batch(
    source: Source, indices_N: np.ndarray
) -> dict[str, np.ndarray]:
  """Images (and labels, and observed-pixel masks, if the source has them) at `indices_N`."""
  images, labels = gather_examples(source, indices_N)
  batch = {"image": images}
  if labels is not None:
    batch["label"] = labels
  if hasattr(source, "observed"):  # missing.MissingSource: bool [N, H, W, 1]
    batch["observed"] = source.observed(indices_N)
  return batch


def _padded_batch(
    source: Source, batch_size: int, indices_N: np.ndarray
) -> dict[str, np.ndarray]:
  """`_indices_to_batch` zero-padded to `batch_size`, with a valid mask."""
  batch = _indices_to_batch(source, indices_N)
  num_pad = batch_size - len(indices_N)
  padded = {
      key: np.concatenate(
          [value, np.zeros((num_pad,) + value.shape[1:], value.dtype)]
      )
      for key, value in batch.items()
  }
  padded["mask"] = np.arange(batch_size) < len(indices_N)
  return padded


def _check_batch_size(batch_size: int) -> None:
  if batch_size <= 0:
    raise UserError(
        f"batch size {batch_size} must be positive; set it to e.g. 64"
    )


def train_iterator(
    source: Source, *, batch_size: int, seed: int, augment=None
) -> grain.DatasetIterator:
  """An endless iterator of {"image": uint8 [batch_size, H, W, C]} batches.

  Batches also have "label": int32 [batch_size] when the source has labels.
  Each epoch visits a new permutation of the examples in whole batches (the
  remainder is dropped). Deterministic in (source, batch_size, seed).
  `augment` (an `augment.Augmentation`, or None) transforms each batch's
  images as a function of the batch number, so resuming stays exact.
  """
  _check_batch_size(batch_size)
  if batch_size > len(source):
    raise UserError(
        f"batch size {batch_size} is larger than the training set"
        f" ({len(source)} examples); lower the batch size or use more"
        " training examples (--config.data.num_train_examples=0 uses all)"
    )
  dataset = EpochBatches(len(source), batch_size, seed).map(
      functools.partial(_indices_to_batch, source)
  )
  if augment is not None:
    dataset = dataset.map_with_index(augment)
  return iter(dataset.to_iter_dataset(_read_options(source)))


def eval_batches(
    source: Source, batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
  """Every example once, in order, in batches of exactly `batch_size`.

  Yields {"image": uint8 [batch_size, H, W, C], "mask": bool [batch_size]},
  plus "label": int32 [batch_size] when the source has labels; the last
  batch is padded with zero images (label 0) whose mask is False.
  """
  _check_batch_size(batch_size)
  dataset = (
      grain.MapDataset.range(len(source))
      .batch(batch_size, batch_fn=np.asarray)
      .map(functools.partial(_padded_batch, source, batch_size))
  )
  return iter(dataset.to_iter_dataset(_read_options(source)))
