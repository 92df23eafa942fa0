"""Training-data augmentation: random horizontal flips and random crops, for small image folders.

  data.augment_flip = True    each training image is mirrored left-right with probability 1/2
  data.augment_crop = P > 0   each training image is padded by P pixels (reflected) and a random
                              window of its own size is cut out: shifts of up to P pixels

Off by default; only training batches are augmented (evaluation never is).
The choices for the image at position i of training batch b are a pure
function of (config.seed, b * batch_size + i) (`counter_rng.uniforms`), so a
run is deterministic per seed and a resumed run sees exactly the batches an
uninterrupted one would (the iterator's state is the batch number).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vae_jax.data.counter_rng import uniforms
from vae_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Augmentation:
  flip: bool
  crop_pad: int
  seed: int

  @classmethod
  def from_config(cls, data_config, seed: int) -> "Augmentation | None":
    """The configured augmentation, or None when it is off."""
    flip, pad = bool(data_config.get("augment_flip", False)), int(data_config.get("augment_crop", 0))
    return cls(flip=flip, crop_pad=pad, seed=seed) if flip or pad > 0 else None

  def __call__(self, batch_number: int, batch: dict) -> dict:
    """The batch with its images augmented (grain's map_with_index calls it with the batch number)."""
    images_NHWC = batch["image"]
    n = len(images_NHWC)
    u = uniforms(self.seed, "augment", batch_number * n + np.arange(n), 3)
    if self.crop_pad > 0:
      images_NHWC = random_crops(images_NHWC, self.crop_pad, u[:, 1], u[:, 2])
    if self.flip:
      images_NHWC = np.where((u[:, 0] < 0.5)[:, None, None, None], images_NHWC[:, :, ::-1], images_NHWC)
    return {**batch, "image": images_NHWC}


def random_crops(images_NHWC: np.ndarray, pad: int, u_rows: np.ndarray, u_cols: np.ndarray) -> np.ndarray:
  """Each image reflect-padded by `pad` and cut back to its size at offsets floor(u * (2 pad + 1))."""
  n, h, w, _ = images_NHWC.shape
  padded = np.pad(images_NHWC, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
  top = np.floor(u_rows * (2 * pad + 1)).astype(np.int64)
  left = np.floor(u_cols * (2 * pad + 1)).astype(np.int64)
  rows = top[:, None, None] + np.arange(h)[None, :, None]
  cols = left[:, None, None] + np.arange(w)[None, None, :]
  return padded[np.arange(n)[:, None, None], rows, cols]


def validate(data_config) -> None:
  """Checks the augmentation keys, with the fix in each message."""
  pad = data_config.get("augment_crop", 0)
  if pad < 0 or pad >= data_config.image_size:
    raise UserError(f"data.augment_crop={pad} must be between 0 (off) and {data_config.image_size - 1}; "
                    "set --config.data.augment_crop to e.g. 4 (shifts of up to 4 pixels)")
  if (pad or data_config.get("augment_flip", False)) and data_config.get("missing", ""):
    raise UserError("data.augment_* with data.missing: the masks are fixed per image and would not move "
                    "with a flipped or shifted image; use one or the other")
