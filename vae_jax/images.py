"""Writing image grids as PNG files."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image


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


def save_grid(images_NHWC: np.ndarray, path: str | os.PathLike, *, ncol: int | None = None) -> Path:
  """Saves float images in [0, 1] as one PNG grid (written atomically)."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  g = grid(to_uint8(images_NHWC), ncol=ncol)
  img = Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g)
  tmp = path.with_name(path.name + ".tmp")
  img.save(tmp, format="PNG")
  os.replace(tmp, path)
  return path
