"""Missing data: which pixels of each image are observed, fixed per example.

`data.missing` chooses the pattern:
  ""       complete data (the default)
  "mcar"   each pixel missing independently with probability `data.missing_rate`
           (missing completely at random; all channels of a pixel together)
  "block"  one `data.missing_block` x `data.missing_block` square missing per
           image, its corner uniform over the positions that fit

A mask is a pure function of (`data.missing_seed`, split, the example's index
in its split): every epoch, run, process and device split sees the same
incomplete dataset, and a run trained on complete data can be scored on the
same test masks. The uniforms come from a counter-based hash
(`counter_rng.py`), so a batch's masks cost one pass over its pixels.

`MissingSource` wraps a split: its images have the missing pixels set to 0,
so no missing value can reach a model, and `observed(indices)` gives bool
[N, H, W, 1] (True = observed), which the pipeline puts in batch["observed"].
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vae_jax.data.counter_rng import uniforms
from vae_jax.data.source import Source, gather, gather_labels, has_labels
from vae_jax.errors import UserError

PATTERNS = ("", "mcar", "block")


@dataclasses.dataclass(frozen=True)
class MissingPattern:
  """One of `PATTERNS` with its parameters (see the module doc)."""

  kind: str
  rate: float = 0.5
  block: int = 14
  seed: int = 0

  @classmethod
  def from_config(cls, data_config) -> "MissingPattern":
    return cls(kind=str(data_config.missing), rate=float(data_config.missing_rate),
               block=int(data_config.missing_block), seed=int(data_config.missing_seed))

  def observed(self, split: str, index_N: np.ndarray, shape_HW: tuple[int, int]) -> np.ndarray:
    """bool [N, H, W, 1]: True where example index_N[i] of `split` is observed."""
    h, w = shape_HW
    index_N = np.asarray(index_N)
    if self.kind == "mcar":
      return (uniforms(self.seed, split, index_N, h * w) >= self.rate).reshape(-1, h, w, 1)
    if self.kind == "block":
      u = uniforms(self.seed, split, index_N, 2)
      top = np.floor(u[:, 0] * (h - self.block + 1)).astype(int)
      left = np.floor(u[:, 1] * (w - self.block + 1)).astype(int)
      rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
      inside = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + self.block)
                & (cols >= left[:, None, None]) & (cols < left[:, None, None] + self.block))
      return ~inside[..., None]
    return np.ones((len(index_N), h, w, 1), bool)


def validate(data_config, image_shape: tuple[int, int, int] | None = None) -> None:
  """Checks the `data.missing*` keys, with the fix in each message."""
  kind = data_config.missing
  if kind not in PATTERNS:
    raise UserError(f"data.missing={kind!r} is not a missing-data pattern; set --config.data.missing "
                    "to mcar, block, or '' (complete data)")
  if kind == "mcar" and not 0.0 < data_config.missing_rate < 1.0:
    raise UserError(f"data.missing_rate={data_config.missing_rate} must be in (0, 1); set "
                    "--config.data.missing_rate to e.g. 0.5")
  side = min(image_shape[:2]) if image_shape else data_config.image_size
  if kind == "block" and not 1 <= data_config.missing_block < side:
    raise UserError(f"data.missing_block={data_config.missing_block} must be between 1 and {side - 1} "
                    f"for {side}-pixel images; set --config.data.missing_block to e.g. {side // 2}")


class MissingSource:
  """A split with the pattern's pixels missing: set to 0 in the images, False in `observed`."""

  def __init__(self, parent: Source, pattern: MissingPattern, split: str):
    self.parent = parent
    self.pattern = pattern
    self.split = split
    self.labels = parent.labels if has_labels(parent) else None
    self._shape_hw = tuple(np.asarray(parent[0]).shape[:2]) if len(parent) else (0, 0)

  def __len__(self) -> int:
    return len(self.parent)

  def __getitem__(self, index: int) -> np.ndarray:
    return self.gather(np.asarray([index]))[0]

  def __repr__(self) -> str:
    return f"MissingSource({self.parent!r}, {self.pattern.kind})"

  def observed(self, indices_N: np.ndarray) -> np.ndarray:
    return self.pattern.observed(self.split, indices_N, self._shape_hw)

  def gather(self, indices_N: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C]: the parent's images with their missing pixels set to 0."""
    images = gather(self.parent, indices_N)
    return images * self.observed(indices_N).astype(np.uint8)

  def gather_labels(self, indices_N: np.ndarray) -> np.ndarray:
    return gather_labels(self.parent, indices_N)
