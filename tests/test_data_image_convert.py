"""Tests for vae_jax.data.image_convert: colour modes and square resizing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vae_jax.data import image_convert

RGB = (200, 30, 90)
# ITU-R 601 luma, the formula PIL documents for convert('L').
GRAY_OF_RGB = round(RGB[0] * 0.299 + RGB[1] * 0.587 + RGB[2] * 0.114)


@pytest.mark.parametrize("size", [16, 64])  # Shrinking and enlarging.
@pytest.mark.parametrize("channels,expected", [(3, RGB), (1, (GRAY_OF_RGB,))])
def test_solid_color_survives_resize(size, channels, expected):
  image = Image.new("RGB", (37, 53), RGB)
  array = image_convert.to_array(image, size=size, channels=channels)
  assert array.shape == (size, size, channels) and array.dtype == np.uint8
  assert np.abs(array.astype(int) - np.array(expected)).max() <= 1


def test_center_crop_not_squash():
  # 30 wide x 10 high: black 10-pixel bands left and right, white centre.
  pixels = np.zeros((10, 30), np.uint8)
  pixels[:, 10:20] = 255
  array = image_convert.to_array(Image.fromarray(pixels), size=5, channels=1)
  assert (array == 255).all()  # Only the white centre square is kept.


def test_tall_image_keeps_vertical_centre():
  pixels = np.zeros((40, 20), np.uint8)  # 20 wide x 40 high.
  pixels[10:30] = 255
  array = image_convert.to_array(Image.fromarray(pixels), size=20, channels=1)
  assert (array == 255).all()


def test_gray_to_rgb_repeats_channel():
  gray = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
  array = image_convert.to_array(Image.fromarray(gray), size=8, channels=3)
  for c in range(3):
    np.testing.assert_array_equal(array[..., c], gray)


def test_16bit_is_scaled_not_clipped():
  values = np.array([[0, 257 * 128], [65535, 257 * 10]], np.uint16)
  image = Image.fromarray(values)
  assert image.mode == "I;16"
  array = image_convert.to_array(image, size=2, channels=1)
  np.testing.assert_array_equal(array[..., 0], [[0, 128], [255, 10]])


def test_transparent_pixels_become_black():
  rgba = np.zeros((4, 4, 4), np.uint8)
  rgba[..., :3] = 255  # White, ...
  rgba[:2, :, 3] = 0  # ... transparent in the top half,
  rgba[2:, :, 3] = 255  # opaque in the bottom half.
  image = Image.fromarray(rgba)
  array = image_convert.to_array(image, size=4, channels=3)
  assert (array[:2] == 0).all() and (array[2:] == 255).all()


def test_palette_and_bilevel_modes():
  palette = Image.new("RGB", (6, 6), RGB).quantize(colors=4)
  assert palette.mode == "P"
  array = image_convert.to_array(palette, size=6, channels=3)
  assert (array == np.array(RGB)).all()
  bilevel = Image.new("1", (6, 6), 1)
  assert (image_convert.to_array(bilevel, size=6, channels=1) == 255).all()
