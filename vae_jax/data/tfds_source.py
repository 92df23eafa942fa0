"""TensorFlow Datasets as random-access image sources, without TensorFlow.

`tfds.data_source` reads TFDS's array_record files and decodes records with
numpy/PIL, so reading a prepared dataset needs no TensorFlow. Downloading and
*preparing* one does: TFDS's builders and its image encoder call TensorFlow,
so without it a first download fails with "No module named 'tensorflow'"; we
turn that into a `UserError` with the fixes. Records are decoded (and, for
CelebA, cropped and resized) lazily, one at a time as the pipeline asks, so
200k CelebA faces are never all held in memory.

`data.dir`, when set for cifar10/celeb_a, is used as the TFDS data_dir (the
folder holding `<name>/<version>/` array_record files). TFDS itself is
imported only when a TFDS dataset is requested: it is slow to import.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any, Callable

import numpy as np
from PIL import Image

from vae_jax.data import image_convert
from vae_jax.errors import UserError, one_line

TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10", "celeb_a")
_RESIZED = ("celeb_a",)  # Datasets whose images are cropped + resized.
LABELLED_NAMES = ("mnist", "fashion_mnist", "cifar10")  # Have a "label".


class RecordLabels:
  """The "label" field of each record, read on demand: len() and [i] -> int."""

  def __init__(self, records: Any):
    self.records = records

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> int:
    return int(self.records[index]["label"])


class TfdsSource:
  """A TFDS split; `source[i]` is record i's image as uint8 [H, W, C].

  With `labels=True`, `source.labels[i]` is record i's "label" field and
  `source.example(i)` gives (image, label) from one record read; otherwise
  `source.labels` is None (see `vae_jax.data.source`).
  """

  def __init__(
      self,
      records: Any,
      transform: Callable[[np.ndarray], np.ndarray] = np.asarray,
      *,
      labels: bool = False,
  ):
    self.records = records  # A tfds data source: len() and [i] -> dict.
    self.transform = transform
    self.labels = RecordLabels(records) if labels else None

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> np.ndarray:
    return self.transform(self.records[index]["image"])

  def example(self, index: int) -> tuple[np.ndarray, int]:
    """(image, label) of record `index`; needs `labels=True`."""
    if self.labels is None:
      raise ValueError(f"{self!r} has no labels")
    record = self.records[index]
    return self.transform(record["image"]), int(record["label"])

  def __repr__(self) -> str:
    labelled = ", labelled" if self.labels is not None else ""
    return f"TfdsSource({self.records!r}{labelled})"


def square_resize(
    image_HWC: np.ndarray, *, size: int, channels: int
) -> np.ndarray:
  """A centre square crop of `image_HWC` resized to [size, size, channels]."""
  image = Image.fromarray(
      image_HWC.squeeze(-1) if image_HWC.shape[-1] == 1 else image_HWC
  )
  return image_convert.to_array(image, size=size, channels=channels)


def _fixes(name: str) -> str:
  fixes = (
      "check your network or pass --config.data.tfds_data_dir=... with a"
      " prepared copy"
  )
  if name in ("mnist", "fashion_mnist"):
    fixes += (
        ", or set --config.data.dir to a folder with the MNIST-format IDX"
        " files"
    )
  return fixes


def open_split(name: str, split: str, data_dir: str) -> Any:
  """`tfds.data_source(name, split)`, downloading if needed.

  Any failure (no network, dataset not prepared, TensorFlow missing for the
  preparation step) becomes a one-line `UserError` with the fixes.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except Exception as e:  # A broken install can raise more than ImportError.
    raise UserError(
        f"cannot import tensorflow_datasets ({one_line(e)}); run `pip install"
        " tensorflow-datasets importlib_resources` or use a local dataset"
    ) from e
  try:  # a prepared copy: no network, no TensorFlow
    return tfds.data_source(
        name, split=split, data_dir=data_dir or None, download=False
    )
  except Exception as e:  # not prepared, or unreadable: TFDS raises many types
    unprepared = e
  if importlib.util.find_spec("tensorflow") is None:
    # Fail now: with download=True, TFDS retries the download for minutes when there is no
    # network, and would then fail anyway on the missing TensorFlow.
    where = data_dir or "TFDS's default data_dir (~/tensorflow_datasets)"
    raise UserError(
        f"TFDS could not read a prepared {name} in {where}"
        f" ({type(unprepared).__name__}: {one_line(unprepared)}), and preparing it (download,"
        " then conversion) needs TensorFlow, which is not installed: `pip install tensorflow`"
        f" for the first run, or {_fixes(name)}"
    ) from unprepared
  try:
    return tfds.data_source(
        name, split=split, data_dir=data_dir or None, download=True
    )
  except ModuleNotFoundError as e:
    if e.name != "tensorflow" and not str(e).endswith("'tensorflow'"):
      raise UserError(
          f"TFDS could not load {name} ({one_line(e)}); {_fixes(name)}"
      ) from e
    raise UserError(
        f"TFDS needs TensorFlow to download and prepare {name}, and it is not"
        " installed; `pip install tensorflow` for the first run, or"
        f" {_fixes(name)}"
    ) from e
  except Exception as e:  # TFDS raises many types (network, not prepared...).
    raise UserError(
        f"TFDS could not load {name} split {split!r} ({type(e).__name__}:"
        f" {one_line(e)}); {_fixes(name)}"
    ) from e


def load_tfds(
    name: str,
    *,
    data_dir: str,
    image_size: int,
    channels: int,
    num_train: int = 0,
    num_test: int = 0,
    labels: bool = False,
) -> tuple[TfdsSource, TfdsSource]:
  """(train, test) sources. `num_*` > 0 keeps the first that many records.

  CelebA is centre-cropped and resized to image_size (and converted to
  `channels`); the other datasets come as stored, for the caller to check.
  `labels=True` makes the sources carry each record's "label" field (not
  for CelebA, which has none: UserError).
  """
  if name not in TFDS_NAMES:
    raise ValueError(f"not a TFDS dataset here: {name}")
  if labels and name not in LABELLED_NAMES:
    raise UserError(
        f"data.name={name} has no class labels; set --config.data.labels=False,"
        " or use data.name=folder with one subfolder per class"
        " (DIR/<class>/<images>)"
    )
  transform = np.asarray
  if name in _RESIZED:
    transform = functools.partial(
        square_resize, size=image_size, channels=channels
    )
  sources = []
  for split, limit in (("train", num_train), ("test", num_test)):
    records = open_split(
        name, f"{split}[:{limit}]" if limit > 0 else split, data_dir
    )
    sources.append(TfdsSource(records, transform, labels=labels))
  return sources[0], sources[1]
