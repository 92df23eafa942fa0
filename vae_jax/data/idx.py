"""Reader for the IDX files MNIST and Fashion-MNIST are published as.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the values row-major.
MNIST images use magic 0x00000803 (uint8, 3 dims: N, rows, cols) and labels
0x00000801 (uint8, 1 dim: N). Files may be gzipped; we detect that from the
content, not the name. Every check that can fail on a damaged or wrong file
raises `UserError` naming the file, so a bad download never surfaces as a
numpy reshape error.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from vae_jax.errors import UserError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"

_FIX = (
    "re-download it, or point --config.data.dir at a folder with intact files"
)


def _read_bytes(path: Path) -> bytes:
  """The file's decompressed content (gzip detected by its magic bytes)."""
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise UserError(f"cannot read {path} ({e.strerror}); {_FIX}") from e
  if not raw.startswith(_GZIP_MAGIC):
    return raw
  try:
    return gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:
    raise UserError(f"{path} is not a valid gzip file ({e}); {_FIX}") from e


def parse_idx(
    content: bytes, *, expected_magic: int, source: str
) -> np.ndarray:
  """Decodes IDX bytes into a uint8 array with the header's dims.

  Args:
    content: the whole (decompressed) file.
    expected_magic: IMAGES_MAGIC or LABELS_MAGIC.
    source: the file name, for error messages.
  """
  if len(content) < 4:
    raise UserError(f"{source} is too short to be an IDX file; {_FIX}")
  (magic,) = struct.unpack(">I", content[:4])
  if magic != expected_magic:
    raise UserError(
        f"{source} has IDX magic 0x{magic:08x}, expected"
        f" 0x{expected_magic:08x}; it is not the right MNIST-format file,"
        f" {_FIX}"
    )
  ndim = expected_magic & 0xFF
  header_len = 4 + 4 * ndim
  if len(content) < header_len:
    raise UserError(f"{source} ends inside its IDX header; {_FIX}")
  dims = struct.unpack(f">{ndim}I", content[4:header_len])
  expected_len = header_len + math.prod(dims)  # Python ints: no overflow
  if len(content) != expected_len:
    what = "truncated" if len(content) < expected_len else "too long"
    raise UserError(
        f"{source} is {what}: header dims {dims} need {expected_len} bytes,"
        f" the file has {len(content)}; {_FIX}"
    )
  return np.frombuffer(content, dtype=np.uint8, offset=header_len).reshape(dims)


def read_images(path: Path) -> np.ndarray:
  """Reads an IDX image file as uint8 [N, H, W, 1]."""
  images_NHW = parse_idx(
      _read_bytes(path), expected_magic=IMAGES_MAGIC, source=str(path)
  )
  return images_NHW[..., None]


def read_labels(path: Path) -> np.ndarray:
  """Reads an IDX label file as uint8 [N]."""
  return parse_idx(
      _read_bytes(path), expected_magic=LABELS_MAGIC, source=str(path)
  )


def _candidates(stem: str) -> list[str]:
  """File names a split may have: gzipped or not, '-idx3' or '.idx3'."""
  dotted = stem.replace("-idx", ".idx")
  return [f"{stem}.gz", stem, f"{dotted}.gz", dotted]


def find_idx_file(directory: Path, stem: str) -> Path:
  """The IDX file for `stem` (e.g. 'train-images-idx3-ubyte') in `directory`."""
  for name in _candidates(stem):
    if (directory / name).is_file():
      return directory / name
  raise UserError(
      f"data.dir={directory} has no {stem}.gz (or {stem}); point"
      " --config.data.dir at a folder with the MNIST IDX files, or leave it"
      " empty to download with TFDS"
  )


def _check_dir(directory: str | Path) -> Path:
  directory = Path(directory).expanduser()
  if not directory.is_dir():
    raise UserError(
        f"data.dir={directory} is not a folder; point --config.data.dir at a"
        " folder with the MNIST IDX files, or leave it empty to download with"
        " TFDS"
    )
  return directory


def load_idx_dir(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
  """Train and test images, uint8 [N, 28, 28, 1], from an MNIST-style folder.

  Only the two image files are read; `load_idx_labels` reads the labels.
  """
  directory = _check_dir(directory)
  train = read_images(find_idx_file(directory, "train-images-idx3-ubyte"))
  test = read_images(find_idx_file(directory, "t10k-images-idx3-ubyte"))
  return train, test


def load_idx_labels(
    directory: str | Path,
    *,
    num_train: int,
    num_test: int,
    num_classes: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
  """Train and test labels, uint8 [N], from an MNIST-style folder.

  `num_train`/`num_test` are the image counts of the two splits: a label
  file with another count, or a label outside [0, num_classes), is a
  `UserError` naming the file.
  """
  directory = _check_dir(directory)
  splits = []
  for stem, count in (
      ("train-labels-idx1-ubyte", num_train),
      ("t10k-labels-idx1-ubyte", num_test),
  ):
    path = find_idx_file(directory, stem)
    labels = read_labels(path)
    if len(labels) != count:
      raise UserError(
          f"{path} has {len(labels)} labels but its images file has {count}"
          f" images; the files do not belong together, {_FIX}"
      )
    if len(labels) and labels.max() >= num_classes:
      raise UserError(
          f"{path} has label {labels.max()}, outside 0..{num_classes - 1};"
          f" it is not an MNIST-format label file, {_FIX}"
      )
    splits.append(labels)
  return splits[0], splits[1]
