"""A dataset from a folder of image files (any depth, any sizes, any modes).

Every image is decoded and converted when the dataset is loaded, each file
once, so corrupt or truncated files stop the run at start-up, instead of
crashing training hours later: one UserError line counts them all and names
the first few. With `skip_bad_images` they are left out instead, with one
warning line, and the splits (and limits) are taken from the remaining files,
exactly as if the bad files were not in the folder. The result is one uint8
array per split.

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
from typing import Callable

import numpy as np
from PIL import Image

from vae_jax.data import image_convert
from vae_jax.data.source import ArraySource
from vae_jax.errors import UserError, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_PROGRESS_THRESHOLD = 10_000  # Say what is happening for folders this big.
_MAX_NAMED = 5  # Unreadable files named in a message; the rest are counted.
_MAX_NAME = 100  # Characters of each such name, and
_MAX_REASON = 80  # of the reason it cannot be read.


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
  """One file as uint8 [size, size, channels]; UserError if it is unreadable.

  The UserError's `__cause__` is the decoder's own exception.
  """
  try:
    with Image.open(path) as image:
      image.load()  # Decode fully now, so truncated files fail here.
      return image_convert.to_array(image, size=size, channels=channels)
  except Exception as e:  # PIL raises many types (OSError, SyntaxError, ...).
    raise UserError(
        f"cannot decode image {path} ({one_line(e)}); remove or replace it"
    ) from e


def _decode_or_reason(
    path: Path, *, size: int, channels: int
) -> np.ndarray | str:
  """`decode_image(path)`, or why it failed (one short line)."""
  try:
    return decode_image(path, size=size, channels=channels)
  except UserError as e:
    return _reason(path, e.__cause__ or e)


def _reason(path: Path, error: BaseException) -> str:
  """Why `path` cannot be read, on one short line, without its full path."""
  try:
    if path.stat().st_size == 0:
      return "empty file"
  except OSError:
    pass
  text = one_line(error, limit=10_000)
  text = text.replace(f" {str(path)!r}", "").replace(str(path), path.name)
  return _short(text, _MAX_REASON, keep="start")


def decode_all(
    directory: Path, paths: list[str], *, size: int, channels: int
) -> tuple[np.ndarray, dict[str, str]]:
  """(images, bad): `paths` decoded into uint8 [N, size, size, channels].

  Every file is decoded exactly once, in a thread pool (PIL releases the GIL
  while decoding). An unreadable file does not stop the others: its row is
  left zero and `bad` maps its path to the reason, in `paths` order.
  """
  if len(paths) >= _PROGRESS_THRESHOLD:
    print(
        f"decoding {len(paths)} images from {directory} ...",
        file=sys.stderr,
        flush=True,
    )
  images_NHWC = np.zeros((len(paths), size, size, channels), np.uint8)
  bad = {}
  decode = functools.partial(_decode_or_reason, size=size, channels=channels)
  pool = concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1)
  try:
    results = pool.map(decode, [directory / p for p in paths])
    for i, (path, result) in enumerate(zip(paths, results)):
      if isinstance(result, str):
        bad[path] = result
      else:
        images_NHWC[i] = result
  finally:
    pool.shutdown(cancel_futures=True)  # On Ctrl-C, don't decode the rest.
  return images_NHWC, bad


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


def _find_paths(directory: str) -> tuple[Path, list[str]]:
  """(root, its image paths, sorted); UserError for no folder or no images."""
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
  return root, paths


def _select(
    paths: list[str], test_fraction: float, num_train: int, num_test: int
) -> tuple[list[str], list[str]]:
  """(train, test) paths of `paths`: the hash split, then the limits."""
  train, test = split_paths(paths, test_fraction)
  train = train[:num_train] if num_train > 0 else train
  test = test[:num_test] if num_test > 0 else test
  return train, test


def _short(text: str, limit: int, keep: str = "end") -> str:
  """`text` on one line, at most `limit` characters; keeps its start or end."""
  text = " ".join(text.split())
  if len(text) <= limit:
    return text
  if keep == "start":
    return text[: limit - 3] + "..."
  return "..." + text[3 - limit :]


def _bad_list(bad: dict[str, str]) -> str:
  """The first few bad files with their reasons, in path order, then a count."""
  names = sorted(bad)
  shown = [f"{_short(p, _MAX_NAME)} ({bad[p]})" for p in names[:_MAX_NAMED]]
  more = len(names) - len(shown)
  return ", ".join(shown) + (f" and {more} more" if more else "")


def _bad_error(
    root: Path, bad: dict[str, str], checked: int, total: int
) -> UserError:
  """The UserError for unreadable files: all of them in one line."""
  if len(bad) == total:
    return UserError(
        f"none of the {total} images in {root} can be read: {_bad_list(bad)};"
        " fix or replace them"
    )
  return UserError(
      f"{len(bad)} of {checked} images in {root} cannot be read:"
      f" {_bad_list(bad)}; fix or remove them, or set"
      " --config.data.skip_bad_images=True"
  )


def _warn_skipped(root: Path, bad: dict[str, str], checked: int) -> None:
  """The one warning line for the files that `skip_bad_images` left out."""
  print(
      f"warning: left out {len(bad)} of {checked} images in {root} that"
      f" cannot be read (data.skip_bad_images=True): {_bad_list(bad)}",
      file=sys.stderr,
      flush=True,
  )


def _stack(
    images: dict[str, np.ndarray], paths: list[str], size: int, channels: int
) -> np.ndarray:
  """The images of `paths`, in that order, as one array [N, size, size, C]."""
  if not paths:
    return np.zeros((0, size, size, channels), np.uint8)
  return np.stack([images[p] for p in paths])


def _load_selected(
    root: Path,
    paths: list[str],
    select: Callable[[list[str]], tuple[list[str], list[str]]],
    *,
    size: int,
    channels: int,
    skip_bad_images: bool,
) -> tuple[list[str], list[str], np.ndarray, np.ndarray, dict[str, str]]:
  """(train paths, test paths, train images, test images, bad files).

  `select(good paths)` picks the two splits; only what it picks is decoded,
  each file once. Unreadable files are a UserError naming them all, or with
  `skip_bad_images` are left out (one warning): the splits are then picked
  again from the remaining files, decoding only files not yet decoded, so the
  result is what the same folder without the bad files would give.
  """
  bad: dict[str, str] = {}
  images: dict[str, np.ndarray] = {}
  while True:
    train, test = select([p for p in paths if p not in bad])
    todo = [p for p in train + test if p not in images]
    if not todo:
      break
    buffer, new_bad = decode_all(root, todo, size=size, channels=channels)
    if not bad and not new_bad:  # The usual case: no copies.
      return train, test, buffer[: len(train)], buffer[len(train) :], {}
    images.update(
        (p, buffer[i]) for i, p in enumerate(todo) if p not in new_bad
    )
    bad.update(new_bad)
    if not skip_bad_images:
      raise _bad_error(root, bad, len(bad) + len(images), len(paths))
  if not images:  # Nothing selected: every file is bad.
    raise _bad_error(root, bad, len(bad), len(paths))
  _warn_skipped(root, bad, len(bad) + len(images))
  train_images = _stack(images, train, size, channels)
  return train, test, train_images, _stack(images, test, size, channels), bad


def load_folder(
    directory: str,
    *,
    size: int,
    channels: int,
    test_fraction: float,
    num_train: int = 0,
    num_test: int = 0,
    skip_bad_images: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) uint8 arrays [N, size, size, channels] from an image folder.

  `num_train`/`num_test` > 0 keep only that many files of each split (in
  sorted path order), and only those are decoded. Unreadable files: see the
  module doc.
  """
  root, paths = _find_paths(directory)
  _, _, train, test, _ = _load_split(
      root, paths, size=size, channels=channels, test_fraction=test_fraction,
      num_train=num_train, num_test=num_test, skip_bad_images=skip_bad_images)
  return train, test


def _load_split(root, paths, *, test_fraction: float, num_train: int, num_test: int, **decode):
  """`_load_selected` with the split of `_select` (test fraction and limits)."""
  select = functools.partial(_select, test_fraction=test_fraction, num_train=num_train,
                             num_test=num_test)
  return _load_selected(root, paths, select, **decode)


def load_labelled_folder(
    directory: str,
    *,
    size: int,
    channels: int,
    test_fraction: float,
    num_train: int = 0,
    num_test: int = 0,
    skip_bad_images: bool = False,
) -> tuple[ArraySource, ArraySource, tuple[str, ...]]:
  """(train, test, class_names) from a folder DIR/<class>/<images>.

  Like `load_folder` (same split, same limits, same handling of unreadable
  files), but each source carries its images' class indices into
  `class_names`; see the module doc. The layout is checked before decoding;
  classes are numbered over the files left after any skipped ones.
  """
  root, paths = _find_paths(directory)
  class_labels(root, paths)  # Fail on a bad layout before decoding.
  train, test, train_images, test_images, bad = _load_split(
      root, paths, size=size, channels=channels, test_fraction=test_fraction,
      num_train=num_train, num_test=num_test, skip_bad_images=skip_bad_images)
  label_of, class_names = class_labels(
      root, [p for p in paths if p not in bad]
  )
  return (
      ArraySource(train_images, [label_of[p] for p in train]),
      ArraySource(test_images, [label_of[p] for p in test]),
      class_names,
  )
