"""Random-access image sources: the one interface every dataset here provides.

A source is anything with ``len(source)`` and ``source[i]`` returning one
uint8 image shaped [H, W, C]. Grain wraps it directly. Sources that hold their
images in one numpy array (`ArraySource`) also let the pipeline fetch a whole
batch with a single fancy-index, which is what makes in-memory training fast.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Source(Protocol):
  """Random access to uint8 images shaped [H, W, C]."""

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> np.ndarray:
    ...


class ArraySource:
  """A source backed by one in-memory uint8 array shaped [N, H, W, C]."""

  def __init__(self, images_NHWC: np.ndarray):
    if images_NHWC.ndim != 4 or images_NHWC.dtype != np.uint8:
      raise ValueError(
          "ArraySource wants uint8 [N, H, W, C], got"
          f" {images_NHWC.dtype} {images_NHWC.shape}"
      )
    self.images_NHWC = images_NHWC

  def __len__(self) -> int:
    return self.images_NHWC.shape[0]

  def __getitem__(self, index: int) -> np.ndarray:
    return self.images_NHWC[index]

  def __repr__(self) -> str:
    return f"ArraySource({self.images_NHWC.shape})"

  def head(self, n: int) -> ArraySource:
    """The first `n` examples (a view, no copy)."""
    return ArraySource(self.images_NHWC[:n])


class HeadSource:
  """The first `n` examples of any source (for sources without `head`)."""

  def __init__(self, parent: Source, n: int):
    self.parent = parent
    self.n = min(n, len(parent))

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, index: int) -> np.ndarray:
    if not -self.n <= index < self.n:
      raise IndexError(f"index {index} out of range for {self.n} examples")
    return self.parent[index % self.n]


def head(source: Source, n: int) -> Source:
  """The first `n` examples of `source`; all of it when `n` is 0."""
  if n <= 0 or n >= len(source):
    return source
  if isinstance(source, ArraySource):
    return source.head(n)
  return HeadSource(source, n)


def gather(source: Source, indices_N: Sequence[int] | np.ndarray) -> np.ndarray:
  """Images at `indices_N` as one uint8 array [N, H, W, C].

  One vectorised copy for in-memory sources, one record at a time otherwise.
  """
  indices_N = np.asarray(indices_N, dtype=np.int64)
  if isinstance(source, ArraySource):
    return source.images_NHWC[indices_N]
  return np.stack([np.asarray(source[int(i)]) for i in indices_N])
