"""FID, KID and precision/recall between two folders of images, as the reference FID tools compute them.

Each folder's images are read as they are (PIL; RGB for Inception, which
resizes them itself, or the judge's channel count), every image once; images
of different sizes are embedded in groups of one size. The first folder plays
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


def read_folder(directory: str | Path, channels: int) -> list[np.ndarray]:
  """The folder's images as uint8 arrays [H, W, channels] in sorted path order; UserError naming a bad file."""
  directory = Path(directory)
  if not directory.is_dir():
    raise UserError(f"--fid_dirs: {directory} is not a folder")
  paths = find_images(directory)
  if len(paths) < 2:
    raise UserError(f"--fid_dirs: {directory} holds {len(paths)} images; the metrics need at least 2 "
                    "(thousands for a stable FID)")
  mode = "RGB" if channels == 3 else "L"
  images = []
  for p in paths:
    try:
      with Image.open(directory / p) as image:
        array = np.asarray(image.convert(mode), np.uint8)
    except Exception as e:  # PIL raises many types
      raise UserError(f"cannot decode image {directory / p} ({one_line(e)}); remove or replace it") from None
    images.append(array if array.ndim == 3 else array[..., None])
  return images


def embed(network, images: list[np.ndarray], *, batch: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
  """(features, logits or None) of each image, in input order, batching images of one size together."""
  by_shape: dict[tuple, list[int]] = {}
  for i, image in enumerate(images):
    by_shape.setdefault(image.shape, []).append(i)
  feats: list = [None] * len(images)
  logits: list = [None] * len(images)
  for indices in by_shape.values():
    for start in range(0, len(indices), batch):
      chunk = indices[start:start + batch]
      f, l = network.outputs(np.stack([images[i] for i in chunk]))
      for row, i in enumerate(chunk):
        feats[i] = f[row]
        logits[i] = None if l is None else l[row]
  return np.stack(feats), (None if logits[0] is None else np.stack(logits))


def compare_folders(dir_a: str | Path, dir_b: str | Path, network, *, channels: int, quality_config) -> dict:
  """fid, kid, kid_std, precision, recall (and the image counts) between folder A and folder B."""
  real, _ = embed(network, read_folder(dir_a, channels))
  fake, _ = embed(network, read_folder(dir_b, channels))
  out = quality_metrics(("fid", "kid", "precision_recall"), real, fake, None, None, num_classes=0,
                        config=quality_config)
  return {**out, "num_images_a": len(real), "num_images_b": len(fake)}
