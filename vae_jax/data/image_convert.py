"""Turns any decoded PIL image into the model's uint8 [S, S, C] array.

Two steps, shared by the image-folder loader and CelebA:
  1. Colour: to 8-bit 'L' (C=1) or 'RGB' (C=3). 16-bit images are scaled, not
     clipped; transparent pixels are composited onto black (the background
     the other datasets here use); grayscale becomes RGB by repeating the
     channel, RGB becomes gray with PIL's ITU-R 601 luma (`convert('L')`).
  2. Geometry: the central square (side = the shorter side) is cut out and
     resized to S x S with antialiased bicubic resampling. This is "resize
     the shorter side to S, then centre-crop", except that pixels outside
     the square never blend into its edges. For CelebA's 218x178 faces it is
     the standard centre 178x178 crop followed by a resize.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _to_8bit_gray(image: Image.Image) -> Image.Image:
  """'I;16'/'I'/'F' images (e.g. 16-bit PNGs) scaled down to 8-bit 'L'."""
  values = np.asarray(image, dtype=np.float64)
  if image.mode in _SIXTEEN_BIT_MODES or values.max(initial=0) > 255:
    values = values / 257.0  # 65535 -> 255
  return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def _has_alpha(image: Image.Image) -> bool:
  return image.mode in _ALPHA_MODES or "transparency" in image.info


def _onto_black(image: Image.Image) -> Image.Image:
  """Composites a transparent image onto an opaque black background."""
  rgba = image.convert("RGBA")
  black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
  return Image.alpha_composite(black, rgba).convert("RGB")


def to_channels(image: Image.Image, channels: int) -> Image.Image:
  """`image` as 8-bit 'L' (channels=1) or 'RGB' (channels=3)."""
  if image.mode in _SIXTEEN_BIT_MODES + ("I", "F"):
    image = _to_8bit_gray(image)
  elif _has_alpha(image):
    image = _onto_black(image)
  elif image.mode not in ("L", "RGB"):
    image = image.convert("RGB")  # palette, CMYK, YCbCr, 1-bit, ...
  target = "L" if channels == 1 else "RGB"
  return image if image.mode == target else image.convert(target)


def center_square_resize(image: Image.Image, size: int) -> Image.Image:
  """The central square of `image`, resampled to `size` x `size`."""
  width, height = image.size
  side = min(width, height)
  left, top = (width - side) // 2, (height - side) // 2
  if side != width or side != height:
    image = image.crop((left, top, left + side, top + side))
  if side == size:
    return image
  return image.resize((size, size), Image.Resampling.BICUBIC)  # Antialiased.


def to_array(image: Image.Image, *, size: int, channels: int) -> np.ndarray:
  """`image` converted, squared and resized: uint8 [size, size, channels]."""
  image = center_square_resize(to_channels(image, channels), size)
  array = np.asarray(image, dtype=np.uint8)
  return array.reshape(size, size, channels)
