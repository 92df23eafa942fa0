"""A dataset from a folder of image files (any depth, any sizes, any modes).

Every image is decoded and converted when the dataset is loaded, so a corrupt
or truncated file stops the run at start-up with its name, instead of crashing
training hours later. The result is one uint8 array per split.

The train/test split is decided per file by a hash of its path relative to
the folder: a file is in the test split when its hash, read as a number in
[0, 1), is below `test_fraction`. Adding or removing other files therefore
never moves an existing file between splits.

With labels (`load_labelled_folder`), the folder is DIR/<class>/<images>: a
file's class is its top-level subfolder (images may sit deeper inside it),
numbered in sorted name order over the whole folder, so both splits (and
any example limits) share one numbering. The split is the same hash split.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from vae_jax.data import image_convert
from vae_jax.data.source import ArraySource
from vae_jax.errors import UserError, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_PROGRESS_THRESHOLD = 10_000  # Say what is happening for folders this big.


def find_images(directory: Path) -> list[str]:
  """Relative POSIX paths of the image files under `directory`, sorted.

  Hidden files and folders (names starting with '.', e.g. macOS '._x.jpg'
  metadata files) are skipped.
  """
  found = []
  for root, dirs, files in os.walk(directory):
    dirs[:] = [d for d in dirs if not d.startswith(".")]
    for name in files:
      if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
        found.append(Path(root, name).relative_to(directory).as_posix())
  return sorted(found)


def split_key(relative_path: str) -> float:
  """A stable pseudo-random number in [0, 1) for a file's relative path."""
  digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def split_paths(
    paths: list[str], test_fraction: float
) -> tuple[list[str], list[str]]:
  """(train, test) paths, each in the order of `paths`.

  With test_fraction > 0 and at least 2 files, both splits get at least one
  file: the file with the smallest key goes to test, the largest to train.
  """
  keys = {p: split_key(p) for p in paths}
  test = {p for p in paths if keys[p] < test_fraction}
  if test_fraction > 0 and len(paths) >= 2:
    if not test:
      test = {min(paths, key=keys.__getitem__)}
    if len(test) == len(paths):
      test.discard(max(paths, key=keys.__getitem__))
  return [p for p in paths if p not in test], [p for p in paths if p in test]


def decode_image(path: Path, *, size: int, channels: int) -> np.ndarray:
  """One file as uint8 [size, size, channels]; UserError if it is unreadable."""
  try:
    with Image.open(path) as image:
      image.load()  # Decode fully now, so truncated files fail here.
      return image_convert.to_array(image, size=size, channels=channels)
  except Exception as e:  # PIL raises many types (OSError, SyntaxError, ...).
    raise UserError(
        f"cannot decode image {path} ({one_line(e)}); remove or replace it"
    ) from e


def decode_all(
    directory: Path, paths: list[str], *, size: int, channels: int
) -> np.ndarray:
  """All `paths` decoded into one uint8 array [N, size, size, channels].

  Decoding runs in a thread pool (PIL releases the GIL while decoding); the
  first unreadable file in `paths` order is the one reported.
  """
  images_NHWC = np.zeros((len(paths), size, size, channels), np.uint8)
  decode = functools.partial(decode_image, size=size, channels=channels)
  pool = concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1)
  try:
    for i, image in enumerate(pool.map(decode, [directory / p for p in paths])):
      images_NHWC[i] = image
  finally:
    pool.shutdown(cancel_futures=True)  # On error, don't decode the rest.
  return images_NHWC


def class_labels(
    root: Path, paths: list[str]
) -> tuple[dict[str, int], tuple[str, ...]]:
  """Each path's class index (its top-level folder) and the sorted classes.

  UserError for a file directly in `root` or fewer than two classes.
  """
  layout = (
      f"arrange data.dir as {root}/<class>/<images> (one subfolder per"
      " class), or set --config.data.labels=False"
  )
  for path in paths:
    if "/" not in path:
      raise UserError(
          f"{root / path} is directly in data.dir, but data.labels=True takes"
          f" each image's class from its subfolder; {layout}"
      )
  class_names = tuple(sorted({p.split("/", 1)[0] for p in paths}))
  if len(class_names) < 2:
    raise UserError(
        f"data.dir={root} has {len(class_names)} class subfolder"
        f" ({', '.join(class_names)}) but data.labels=True needs at least 2;"
        f" {layout}"
    )
  index = {name: i for i, name in enumerate(class_names)}
  return {p: index[p.split("/", 1)[0]] for p in paths}, class_names


def _select_paths(
    directory: str, test_fraction: float, num_train: int, num_test: int
) -> tuple[Path, list[str], list[str], list[str]]:
  """(root, all image paths, train paths, test paths) after the limits."""
  if not directory:
    raise UserError(
        "data.name=folder needs a folder; set --config.data.dir=/path/to/images"
    )
  root = Path(directory).expanduser()
  if not root.is_dir():
    raise UserError(
        f"data.dir={directory} does not exist or is not a folder; set"
        " --config.data.dir to a folder of images"
    )
  paths = find_images(root)
  if not paths:
    raise UserError(
        f"data.dir={directory} has no images ({', '.join(IMAGE_SUFFIXES)});"
        " set --config.data.dir to a folder that contains some"
    )
  train, test = split_paths(paths, test_fraction)
  train = train[:num_train] if num_train > 0 else train
  test = test[:num_test] if num_test > 0 else test
  return root, paths, train, test


def _decode_splits(
    root: Path, train: list[str], test: list[str], size: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
  if len(train) + len(test) >= _PROGRESS_THRESHOLD:
    print(
        f"decoding {len(train) + len(test)} images from {root} ...",
        file=sys.stderr,
        flush=True,
    )
  return (
      decode_all(root, train, size=size, channels=channels),
      decode_all(root, test, size=size, channels=channels),
  )


def load_folder(
    directory: str,
    *,
    size: int,
    channels: int,
    test_fraction: float,
    num_train: int = 0,
    num_test: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) uint8 arrays [N, size, size, channels] from an image folder.

  `num_train`/`num_test` > 0 keep only that many files of each split (in
  sorted path order), and only those are decoded.
  """
  root, _, train, test = _select_paths(
      directory, test_fraction, num_train, num_test
  )
  return _decode_splits(root, train, test, size, channels)


def load_labelled_folder(
    directory: str,
    *,
    size: int,
    channels: int,
    test_fraction: float,
    num_train: int = 0,
    num_test: int = 0,
) -> tuple[ArraySource, ArraySource, tuple[str, ...]]:
  """(train, test, class_names) from a folder DIR/<class>/<images>.

  Like `load_folder` (same split, same limits), but each source carries its
  images' class indices into `class_names`; see the module doc.
  """
  root, paths, train, test = _select_paths(
      directory, test_fraction, num_train, num_test
  )
  label_of, class_names = class_labels(root, paths)
  train_images, test_images = _decode_splits(root, train, test, size, channels)
  return (
      ArraySource(train_images, [label_of[p] for p in train]),
      ArraySource(test_images, [label_of[p] for p in test]),
      class_names,
  )
