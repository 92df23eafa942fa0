"""Writing image grids as PNG or JPEG files, atomically, to paths checked before anything is written.

The extension names the format: .png is PNG, .jpg and .jpeg are JPEG (any case).
A file is first written to a temporary file beside it and then renamed into
place, so a reader never sees half an image and no temporary file remains, even
on error. Problems a user can fix (a bad path, a full disk) raise `UserError`.
"""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from vae_jax.errors import UserError

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def open_image(path: str | os.PathLike, what: str) -> Image.Image:
  """The decoded image file (a loaded copy); one-line UserError naming `what` if absent or unreadable."""
  try:
    with Image.open(path) as image:
      image.load()
      return image.copy()
  except FileNotFoundError:
    raise UserError(f"{what} {path} not found") from None
  except OSError as e:  # PIL's UnidentifiedImageError and truncated files are OSErrors
    raise UserError(f"{what} {path} is not a readable image ({e})") from None


def to_uint8(images_NHWC: np.ndarray) -> np.ndarray:
  """Floats in [0, 1] -> uint8, clipped."""
  return np.clip(np.rint(np.asarray(images_NHWC, np.float32) * 255.0), 0, 255).astype(np.uint8)


def interleave(a_NHWC: np.ndarray, b_NHWC: np.ndarray) -> np.ndarray:
  """[a0, b0, a1, b1, ...]: e.g. originals beside their reconstructions."""
  out = np.empty((2 * len(a_NHWC), *a_NHWC.shape[1:]), np.float32)
  out[0::2], out[1::2] = a_NHWC, b_NHWC
  return out


def grid(images_NHWC: np.ndarray, *, ncol: int | None = None, pad: int = 1) -> np.ndarray:
  """Tiles N images [N, H, W, C] into one [rows*(H+pad)+pad, ncol*(W+pad)+pad, C] image."""
  n, h, w, c = images_NHWC.shape
  ncol = ncol or math.ceil(math.sqrt(n))
  nrow = math.ceil(n / ncol)
  out = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), images_NHWC.dtype)
  for i in range(n):
    r, col = divmod(i, ncol)
    y, x = pad + r * (h + pad), pad + col * (w + pad)
    out[y:y + h, x:x + w] = images_NHWC[i]
  return out


def image_format(path: Path, what: str = "") -> str:
  """The PIL format the extension of `path` names ("PNG" or "JPEG"); UserError for any other.

  `what` (e.g. "--output") prefixes the message."""
  fmt = FORMATS.get(path.suffix.lower())
  if fmt is None:
    found = f"extension {path.suffix} is not supported" if path.suffix else "no extension"
    raise UserError(f"{what + ' ' if what else ''}{path}: {found}; use one of {', '.join(FORMATS)}")
  return fmt


def check_output(path: str | os.PathLike, what: str) -> Path:
  """`path` as an image output the user named with `what` (e.g. "--output"), checked without
  writing anything: a supported extension, not an existing directory or other non-file, in an
  existing, writable directory. Missing directories are not created: that is a UserError too."""
  if not str(path):
    raise UserError(f"{what} is empty; give a file name such as samples.png")
  path = Path(path)
  prefix = f"{what} {path}"
  if path.is_dir():
    raise UserError(f"{prefix} is a directory; give a file name inside it, e.g. {path / 'samples.png'}")
  if path.exists() and not path.is_file():
    raise UserError(f"{prefix} exists and is not a regular file")
  _check_parent(path, prefix)
  image_format(path, what)
  return path


def _check_parent(path: Path, prefix: str) -> None:
  """UserError unless `path`'s directory exists, is a directory and is writable."""
  _refuse_file_as_directory(path, prefix)
  if not path.parent.exists():
    raise UserError(f"{prefix}: directory {path.parent} does not exist; create it first")
  if not os.access(path.parent, os.W_OK | os.X_OK):
    raise UserError(f"{prefix}: directory {path.parent} is not writable")


def _refuse_file_as_directory(path: Path, prefix: str) -> None:
  """UserError if the nearest existing directory above `path` is in fact a file."""
  existing = next((a for a in (path.parent, *path.parent.parents) if a.exists()), None)
  if existing is not None and not existing.is_dir():
    raise UserError(f"{prefix}: {existing} is a file, not a directory")


def grid_image(images_NHWC: np.ndarray, *, ncol: int | None = None) -> Image.Image:
  """Float images in [0, 1] tiled into one grid: grayscale ("L") for 1 channel, else RGB."""
  g = grid(to_uint8(images_NHWC), ncol=ncol)
  return Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g)


def write_images(outputs: Sequence[tuple[Path, Image.Image]]) -> list[Path]:
  """Writes each image to its path in the format its extension names, all together.

  Every image is written to a temporary file in its path's directory first; only
  when all are written are they renamed into place (os.replace). So a failure while
  encoding or writing leaves every path as it was (only a failing rename, after all
  are written, can leave the earlier ones renamed). Temporary files never remain.
  An OSError (e.g. a full disk) becomes a UserError naming the path.
  """
  temps: list[Path] = []
  try:
    for path, image in outputs:
      temps.append(_temp_beside(path))
      _write(image, temps[-1], path)
    for (path, _), temp in zip(outputs, temps):
      _replace(temp, path)
  finally:
    for temp in temps:
      temp.unlink(missing_ok=True)
  return [path for path, _ in outputs]


def _temp_beside(path: Path) -> Path:
  """A new, empty, hidden file in `path`'s directory (mode 0666 less the umask, as for open())."""
  temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
  try:
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
  except OSError as e:
    raise UserError(f"cannot write {path}: {e.strerror or e}") from None
  return temp


def _write(image: Image.Image, temp: Path, path: Path) -> None:
  fmt = image_format(path)
  options = {"quality": 95} if fmt == "JPEG" else {}
  try:
    image.save(temp, format=fmt, **options)
  except OSError as e:
    raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def _replace(temp: Path, path: Path) -> None:
  try:
    os.replace(temp, path)
  except OSError as e:
    raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def save_image(image: Image.Image, path: str | os.PathLike) -> Path:
  """Writes one image atomically (see `write_images`), creating missing parent directories
  (the trainer's DIR/samples); a parent that is a file is a UserError."""
  path = Path(path)
  image_format(path)
  _refuse_file_as_directory(path, str(path))
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot create the directory for {path}: {e.strerror or e}") from None
  return write_images([(path, image)])[0]


def save_grid(images_NHWC: np.ndarray, path: str | os.PathLike, *, ncol: int | None = None) -> Path:
  """Saves float images in [0, 1] as one grid, PNG or JPEG by the extension (see `save_image`)."""
  return save_image(grid_image(images_NHWC, ncol=ncol), path)
