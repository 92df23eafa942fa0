"""Inpainting: a user's own image and mask file, or test images under a missing-data pattern.

The mask is a grayscale image of the same size as the image, white (>= 128)
where pixels are missing. The image is converted to the run's channels (gray
or RGB, `data.image_convert.to_channels`).

An image of the model's size is filled directly. Any other size is box-
filtered to the model's size for inference (a model pixel counts as missing
when it covers any missing pixel, so no missing value leaks into an observed
one), and the filled pixels are resized back (bicubic). Either way the
output has the input's size and keeps every observed pixel of the input
exactly: only the pixels the mask marks missing change.

`test_grid` fills the first test images under a pattern (`data/missing.py`;
the run's own `data.missing` by default): one column per image, rows the
original, the input (missing pixels grey), the single imputation and M
resampled ones.
"""

from __future__ import annotations

import jax
import numpy as np
from PIL import Image

from vae_jax import images, imputation, inference
from vae_jax.data.image_convert import to_channels
from vae_jax.errors import UserError


def read_pair(image_path: str, mask_path: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 [H, W, C] image, bool [H, W, 1] observed) from the two files, checked."""
  image = to_channels(images.open_image(image_path, "--inpaint image"), channels)
  mask = images.open_image(mask_path, "--mask")
  if mask.size != image.size:
    raise UserError(f"--mask {mask_path} is {mask.size[0]}x{mask.size[1]} but --inpaint {image_path} is "
                    f"{image.size[0]}x{image.size[1]}; the mask must be the image's size (white = missing)")
  missing = np.asarray(to_channels(mask, 1), np.uint8) >= 128
  if not missing.any():
    raise UserError(f"--mask {mask_path} marks no pixel missing (white = missing): nothing to fill")
  array = np.asarray(image, np.uint8).reshape(image.size[1], image.size[0], channels)
  return array, ~missing[..., None]


def _to_model_size(image_HWC: np.ndarray, observed_HW1: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Box-filtered to size x size; a pixel is observed only if everything it covers is."""
  def box(array_HW: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(array_HW).resize((size, size), Image.Resampling.BOX), np.float32)
  channels = [box(image_HWC[..., c]) for c in range(image_HWC.shape[-1])]
  small = np.clip(np.rint(np.stack(channels, -1)), 0, 255).astype(np.uint8)
  missing = box(np.where(observed_HW1[..., 0], 0, 255).astype(np.uint8)) > 0
  return small, ~missing[..., None]


def _to_input_size(filled_HWC: np.ndarray, shape_HW: tuple[int, int]) -> np.ndarray:
  """A [0, 1] image resized (bicubic) to `shape_HW`, per channel."""
  h, w = shape_HW
  out = [np.asarray(Image.fromarray(filled_HWC[..., c].astype(np.float32), "F").resize(
      (w, h), Image.Resampling.BICUBIC)) for c in range(filled_HWC.shape[-1])]
  return np.clip(np.stack(out, -1), 0.0, 1.0)


def inpaint(run, image_HWC: np.ndarray, observed_HW1: np.ndarray, *, num_samples: int,
            num_imputations: int, seed: int, mode: str = "mean", label: int | None = None) -> np.ndarray:
  """uint8 [1 + M, H, W, C]: the single imputation, then M resampled ones, each keeping the observed pixels."""
  size = run.config.data.image_size
  same = image_HWC.shape[:2] == (size, size)
  small, small_observed = (image_HWC, observed_HW1) if same else _to_model_size(image_HWC, observed_HW1, size)
  y = None if label is None else np.asarray([label], np.int32)
  out = imputation.impute(run.params, small[None], small_observed[None], jax.random.split(jax.random.key(seed), 1),
                          model=run.model, num_samples=num_samples, num_imputations=num_imputations,
                          mode=mode, y=y)
  filled = np.concatenate([np.asarray(out.single), np.asarray(out.multiple)[:, 0]])  # [1 + M, S, S, C]
  if not same:
    filled = np.stack([_to_input_size(f, image_HWC.shape[:2]) for f in filled])
  result = images.to_uint8(filled)
  return np.where(observed_HW1[None], image_HWC[None], result)


def shown_input(image_HWC: np.ndarray, observed_HW1: np.ndarray) -> np.ndarray:
  """The input with its missing pixels painted mid-gray, to show what was asked."""
  return np.where(observed_HW1, image_HWC, np.uint8(128))


def output_image(filled_NHWC: np.ndarray, image_HWC: np.ndarray, observed_HW1: np.ndarray) -> Image.Image:
  """One filled image as it is, or (with resampled imputations) a row: input, single, each imputation."""
  if len(filled_NHWC) == 1:
    array = filled_NHWC[0]
  else:
    row = np.concatenate([shown_input(image_HWC, observed_HW1)[None], filled_NHWC])
    array = images.grid(row, ncol=len(row), pad=2)
  return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def test_grid(run, pattern, *, num: int, num_samples: int, num_imputations: int, seed: int,
              mode: str = "mean") -> Image.Image:
  """The grid described in the module doc, for the first `num` test images; not written."""
  x, y = inference.first_test_images(run, num)
  observed = pattern.observed("test", np.arange(num), x.shape[1:3])
  if inference.num_classes(run) <= 0:
    y = None
  out = imputation.impute(run.params, x, observed, jax.random.split(jax.random.key(seed), num), model=run.model,
                          num_samples=num_samples, num_imputations=num_imputations, mode=mode, y=y)
  given = x / 255.0
  rows = [given, np.where(observed, given, 0.5), np.asarray(out.single), *np.asarray(out.multiple)]
  return images.grid_image(np.concatenate(rows), ncol=num)


def check_label(run, label: int | None) -> None:
  """--inpaint's class: required by a conditional model, refused by another."""
  k = inference.num_classes(run)
  if k > 0 and label is None:
    raise UserError(f"this run's model is conditional on {k} classes: pass --label N (0..{k - 1}), "
                    "the class of the image to fill")
  inference.check_class(run, label)


def check_model(run) -> None:
  if not run.model.has_encoder:
    raise UserError(f"--inpaint needs a VAE (an encoder); {run.config.model.name} has none")

