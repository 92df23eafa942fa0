"""Random-access image sources: the one interface every dataset here provides.

A source is anything with ``len(source)`` and ``source[i]`` returning one
uint8 image shaped [H, W, C]. Grain wraps it directly. Sources that hold their
images in one numpy array (`ArraySource`) also let the pipeline fetch a whole
batch with a single fancy-index, which is what makes in-memory training fast.

Class labels (optional). A source *has labels* when it has a ``labels``
attribute that is not None: a sequence of ints with ``len(labels) ==
len(source)``, ``labels[i]`` being example i's class in [0, num_classes).
`ArraySource` keeps them as one int32 array [N]; lazy sources (TFDS) give a
sequence that reads each record's label on demand. ``source[i]`` is always
just the image, so code that only wants images never sees labels.

A source may also read a whole batch itself: ``gather(indices)`` and
``gather_labels(indices)`` methods are used when present (a wrapper such as
`missing.MissingSource` transforms its parent's batch in one pass).

A lazy source whose label costs a whole record read may also define
``example(i) -> (image, label)``, reading the record once; `gather_examples`
uses it when present.

Functions:
  has_labels(source)                  whether `source` carries labels
  gather(source, indices)             images uint8 [N, H, W, C]
  gather_labels(source, indices)      labels int32 [N]
  gather_examples(source, indices)    (images, labels or None), one read each
  head(source, n)                     the first n examples, labels aligned
  Window(source, start, stop)         examples [start, stop), keeping their indices (`first_index`)
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Source(Protocol):
  """Random access to uint8 images shaped [H, W, C]."""

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> np.ndarray:
    ...


def _check_labels(labels: Any, num_examples: int) -> np.ndarray:
  """`labels` as an int32 array [num_examples]; ValueError if it cannot be."""
  labels_N = np.asarray(labels)
  if (
      labels_N.ndim != 1
      or len(labels_N) != num_examples
      or not np.issubdtype(labels_N.dtype, np.integer)
  ):
    raise ValueError(
        f"labels must be integers [{num_examples}], got {labels_N.dtype}"
        f" {labels_N.shape}"
    )
  if len(labels_N) and labels_N.min() < 0:
    raise ValueError(f"labels must be non-negative, got {labels_N.min()}")
  return labels_N.astype(np.int32, copy=False)


class ArraySource:
  """A source backed by one in-memory uint8 array shaped [N, H, W, C].

  `labels`, if given, is example i's integer class for each i (int32 [N]).
  """

  def __init__(self, images_NHWC: np.ndarray, labels: Any = None):
    if images_NHWC.ndim != 4 or images_NHWC.dtype != np.uint8:
      raise ValueError(
          "ArraySource wants uint8 [N, H, W, C], got"
          f" {images_NHWC.dtype} {images_NHWC.shape}"
      )
    self.images_NHWC = images_NHWC
    self.labels: np.ndarray | None = (
        None if labels is None else _check_labels(labels, len(images_NHWC))
    )

  def __len__(self) -> int:
    return self.images_NHWC.shape[0]

  def __getitem__(self, index: int) -> np.ndarray:
    return self.images_NHWC[index]

  def __repr__(self) -> str:
    labelled = ", labelled" if self.labels is not None else ""
    return f"ArraySource({self.images_NHWC.shape}{labelled})"

  def head(self, n: int) -> ArraySource:
    """The first `n` examples and their labels (views, no copy)."""
    return ArraySource(
        self.images_NHWC[:n], None if self.labels is None else self.labels[:n]
    )


class Window:
  """Examples [start, stop) of a source, numbered as in the parent: `first_index` = start.

  For evaluating part of a split (`python -m vae_jax.evaluate --examples`): an
  evaluator that seeds each example by its index (`first_index + i`) draws
  exactly what it would draw over the whole split, so the parts can be merged.
  """

  def __init__(self, parent: Source, start: int, stop: int):
    if not 0 <= start < stop <= len(parent):
      raise ValueError(f"window [{start}, {stop}) outside [0, {len(parent)})")
    self.parent, self.first_index, self.stop = parent, start, stop
    self.labels = _WindowLabels(self) if has_labels(parent) else None

  def __len__(self) -> int:
    return self.stop - self.first_index

  def _parent_index(self, index: int) -> int:
    if not -len(self) <= index < len(self):
      raise IndexError(f"index {index} out of range for {len(self)} examples")
    return self.first_index + index % len(self)

  def __getitem__(self, index: int) -> np.ndarray:
    return self.parent[self._parent_index(index)]

  def example(self, index: int) -> tuple[np.ndarray, int]:
    return _read_example(self.parent, self._parent_index(index))

  def gather(self, indices_N: np.ndarray) -> np.ndarray:
    return gather(self.parent, self.first_index + np.asarray(indices_N, np.int64))

  def gather_labels(self, indices_N: np.ndarray) -> np.ndarray:
    return gather_labels(self.parent, self.first_index + np.asarray(indices_N, np.int64))

  def head(self, n: int) -> "Window":
    return Window(self.parent, self.first_index, self.first_index + min(n, len(self)))


class _WindowLabels:
  def __init__(self, window: Window):
    self.window = window

  def __len__(self) -> int:
    return len(self.window)

  def __getitem__(self, index: int) -> int:
    return self.window.parent.labels[self.window._parent_index(index)]


def first_index(source: Source) -> int:
  """The index in its split of `source`'s example 0 (a `Window`'s start; else 0)."""
  return int(getattr(source, "first_index", 0))


def has_labels(source: Source) -> bool:
  """Whether `source` carries class labels (see the module doc)."""
  return getattr(source, "labels", None) is not None


def head(source: Source, n: int) -> Source:
  """The first `n` examples of `source`; all of it when `n` is 0."""
  if n <= 0 or n >= len(source):
    return source
  if isinstance(source, (ArraySource, Window)):
    return source.head(n)
  return Window(source, 0, n)


def gather(source: Source, indices_N: Sequence[int] | np.ndarray) -> np.ndarray:
  """Images at `indices_N` as one uint8 array [N, H, W, C].

  One vectorised copy for in-memory sources, one record at a time otherwise.
  """
  indices_N = np.asarray(indices_N, dtype=np.int64)
  if isinstance(source, ArraySource):
    return source.images_NHWC[indices_N]
  if hasattr(source, "gather"):  # a wrapper with its own batch read (e.g. missing.MissingSource)
    return source.gather(indices_N)
  return np.stack([np.asarray(source[int(i)]) for i in indices_N])


def _no_labels(source: Source) -> ValueError:
  return ValueError(f"{source!r} has no labels")


def gather_labels(
    source: Source, indices_N: Sequence[int] | np.ndarray
) -> np.ndarray:
  """Labels at `indices_N` as one int32 array [N]; ValueError if none.

  One vectorised copy for in-memory sources, one label at a time otherwise.
  """
  if not has_labels(source):
    raise _no_labels(source)
  indices_N = np.asarray(indices_N, dtype=np.int64)
  if isinstance(source, ArraySource):
    return source.labels[indices_N]
  if hasattr(source, "gather_labels"):
    return source.gather_labels(indices_N)
  labels = source.labels
  return np.array([int(labels[int(i)]) for i in indices_N], np.int32)


def _read_example(source: Source, index: int) -> tuple[np.ndarray, int]:
  """(image, label) of one example of a labelled source."""
  example = getattr(source, "example", None)
  if example is not None:
    image, label = example(index)
    return np.asarray(image), int(label)
  return np.asarray(source[index]), int(source.labels[index])


def gather_examples(
    source: Source, indices_N: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
  """(images uint8 [N, H, W, C], labels int32 [N] or None if unlabelled).

  Like `gather` and `gather_labels` together, but each record of a lazy
  source is read once (through its `example` method when it has one).
  """
  indices_N = np.asarray(indices_N, dtype=np.int64)
  if isinstance(source, ArraySource) or not has_labels(source) or hasattr(source, "gather"):
    images = gather(source, indices_N)
    labels = gather_labels(source, indices_N) if has_labels(source) else None
    return images, labels
  pairs = [_read_example(source, int(i)) for i in indices_N]
  return (
      np.stack([image for image, _ in pairs]),
      np.array([label for _, label in pairs], np.int32),
  )
