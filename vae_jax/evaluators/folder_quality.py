"""FID, KID and precision/recall between two folders of images, as the reference FID tools compute them.

Each folder's images are read as they are (PIL; RGB for Inception, which
resizes them itself, or the judge's channel count), every image once; images
of different sizes are embedded in groups of one size, a batch at a time, so a
folder of any size fits in memory (its features do: 8 KB per image for Inception). The first folder plays
the part of the real images (precision: share of B inside A's manifold;
recall: share of A inside B's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vae_jax.data.folder import find_images
from vae_jax.errors import UserError, one_line
from vae_jax.evaluators.sample_quality import quality_metrics


def _folder_paths(directory: str | Path) -> tuple[Path, list[str]]:
  directory = Path(directory)
  if not directory.is_dir():
    raise UserError(f"--fid_dirs: {directory} is not a folder")
  paths = find_images(directory)
  if len(paths) < 2:
    raise UserError(f"--fid_dirs: {directory} holds {len(paths)} images; the metrics need at least 2 "
                    "(thousands for a stable FID)")
  return directory, paths


def _read(path: Path, mode: str, *, header_only: bool = False):
  """uint8 [H, W, C] (or the (width, height) size alone); UserError naming a file PIL cannot read."""
  try:
    with Image.open(path) as image:
      if header_only:
        return image.size
      array = np.asarray(image.convert(mode), np.uint8)
  except Exception as e:  # PIL raises many types
    raise UserError(f"cannot decode image {path} ({one_line(e)}); remove or replace it") from None
  return array if array.ndim == 3 else array[..., None]


def embed_folder(directory: str | Path, network, channels: int, *,
                 batch: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
  """(features [N, D], logits or None) of the folder's images in sorted path order.

  Images are grouped by size (read from their headers) and decoded `batch` at a
  time, so memory holds one batch of images, not the folder.
  """
  directory, paths = _folder_paths(directory)
  mode = "RGB" if channels == 3 else "L"
  by_size: dict[tuple, list[int]] = {}
  for i, p in enumerate(paths):
    by_size.setdefault(_read(directory / p, mode, header_only=True), []).append(i)
  feats = logits = None
  for indices in by_size.values():
    for start in range(0, len(indices), batch):
      rows = indices[start:start + batch]
      f, l = network.outputs(np.stack([_read(directory / paths[i], mode) for i in rows]))
      if feats is None:
        feats = np.zeros((len(paths),) + f.shape[1:], np.asarray(f).dtype)
        logits = None if l is None else np.zeros((len(paths),) + l.shape[1:], np.asarray(l).dtype)
      feats[rows] = f
      if logits is not None:
        logits[rows] = l
  return feats, logits


def compare_folders(dir_a: str | Path, dir_b: str | Path, network, *, channels: int, quality_config) -> dict:
  """fid, kid, kid_std, precision, recall (and the image counts) between folder A and folder B."""
  real, _ = embed_folder(dir_a, network, channels)
  fake, _ = embed_folder(dir_b, network, channels)
  out = quality_metrics(("fid", "kid", "precision_recall"), real, fake, None, None, num_classes=0,
                        config=quality_config)
  return {**out, "num_images_a": len(real), "num_images_b": len(fake)}
