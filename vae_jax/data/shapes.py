"""Procedural 2-D shapes with known generative factors (a small dSprites).

Each example is one white shape (ink 255) on a black background, grayscale,
image_size x image_size x 1. Five factors, each drawn uniformly from a grid:

  shape     0 square, 1 ellipse, 2 triangle (equilateral)
  scale     6 values in [0.5, 1]; the shape's outer radius is
            scale * RADIUS_FRACTION * image_size pixels
  rotation  40 values over one symmetry period, in radians: [0, pi/2) for
            squares, [0, 2pi/3) for triangles, so no two rotations look the
            same; ellipses are axis-aligned and always 0
  x, y      32 values each in [0, 1]: the centre's column / row, mapped
            linearly onto [margin, image_size - margin] pixels, where the
            margin keeps the largest shape inside the image

Example i of a split is a pure function of (i, split): its factors come from a
counter-based hash, not a stateful RNG, so any example can be regenerated
alone and the dataset needs no files. Rendering is vectorised numpy with
analytic anti-aliasing (coverage from a signed distance to the edge).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from vae_jax.data.source import ArraySource

SHAPE_NAMES = ("square", "ellipse", "triangle")
SCALES = np.linspace(0.5, 1.0, 6)
NUM_ROTATIONS = 40
NUM_POSITIONS = 32
RADIUS_FRACTION = 0.25  # Outer radius at scale 1, as a fraction of the side.
ELLIPSE_ASPECT = 0.6  # Minor / major semi-axis.
_SYMMETRY_PERIOD = (math.pi / 2, 0.0, 2 * math.pi / 3)  # Per shape id.
_SPLIT_IDS = {"train": 1, "test": 2}
_RENDER_CHUNK = 4096  # Examples rendered at once (bounds temporary memory).


@dataclasses.dataclass(frozen=True)
class Factors:
  """Generative factors of N examples (arrays of length N)."""

  shape: np.ndarray  # int, index into SHAPE_NAMES
  scale: np.ndarray  # float, in [0.5, 1]
  rotation: np.ndarray  # float, radians
  x: np.ndarray  # float, in [0, 1], horizontal (column)
  y: np.ndarray  # float, in [0, 1], vertical (row, downwards)

  def __len__(self) -> int:
    return len(self.shape)

  def take(self, indices: slice | np.ndarray) -> Factors:
    return Factors(
        **{
            f.name: getattr(self, f.name)[indices]
            for f in dataclasses.fields(self)
        }
    )

  def row(self, i: int) -> dict[str, float | int]:
    """Example i's factors as plain Python numbers."""
    return {
        "shape": int(self.shape[i]),
        "scale": float(self.scale[i]),
        "rotation": float(self.rotation[i]),
        "x": float(self.x[i]),
        "y": float(self.y[i]),
    }


def _splitmix64(x: np.ndarray) -> np.ndarray:
  """A good 64-bit integer mixer (SplitMix64's finaliser), elementwise."""
  with np.errstate(over="ignore"):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform_ints(
    indices: np.ndarray, split_id: int, stream: int, count: int
) -> np.ndarray:
  """A hash of (index, split, stream) reduced to [0, count), elementwise."""
  key = indices.astype(np.uint64) * np.uint64(4) + np.uint64(split_id)
  key = _splitmix64(key)
  key = _splitmix64(key ^ np.uint64(stream))
  return ((key >> np.uint64(11)) % np.uint64(count)).astype(np.int64)


def sample_factors(indices: np.ndarray, split: str) -> Factors:
  """The factors of examples `indices` of `split` ('train' or 'test')."""
  indices = np.asarray(indices, dtype=np.int64)
  split_id = _SPLIT_IDS[split]

  def draw(stream: int, count: int) -> np.ndarray:
    return _uniform_ints(indices, split_id, stream, count)

  shape = draw(1, len(SHAPE_NAMES))
  period = np.asarray(_SYMMETRY_PERIOD)[shape]
  positions = np.linspace(0.0, 1.0, NUM_POSITIONS)
  return Factors(
      shape=shape,
      scale=SCALES[draw(2, len(SCALES))],
      rotation=draw(3, NUM_ROTATIONS) * period / NUM_ROTATIONS,
      x=positions[draw(4, NUM_POSITIONS)],
      y=positions[draw(5, NUM_POSITIONS)],
  )


def centre_pixels(
    factors: Factors, image_size: int
) -> tuple[np.ndarray, np.ndarray]:
  """(column, row) of each shape's centre in pixels (0 = left/top edge)."""
  margin = RADIUS_FRACTION * image_size + 1.0
  span = image_size - 2 * margin
  return margin + factors.x * span, margin + factors.y * span


def _signed_distance(
    u: np.ndarray, v: np.ndarray, shape_id: int, radius: np.ndarray
) -> np.ndarray:
  """Distance in pixels from local coords (u, v) to the shape edge (<0 inside).

  Exact for squares; exact near the edges for triangles and ellipses (a
  first-order estimate), which is all the anti-aliasing needs.
  """
  if shape_id == 0:  # Square with circumradius `radius`.
    half = radius / math.sqrt(2)
    qu, qv = np.abs(u) - half, np.abs(v) - half
    outside = np.hypot(np.maximum(qu, 0), np.maximum(qv, 0))
    return outside + np.minimum(np.maximum(qu, qv), 0)
  if shape_id == 1:  # Ellipse with semi-axes radius, ELLIPSE_ASPECT * radius.
    a, b = radius, ELLIPSE_ASPECT * radius
    level = (u / a) ** 2 + (v / b) ** 2 - 1
    gradient = 2 * np.hypot(u / a**2, v / b**2)
    return level / np.maximum(gradient, 1e-6)
  # Equilateral triangle, circumradius `radius`, a vertex pointing up (-v).
  # Inside when the point is within the inradius (radius / 2) of all 3 edges.
  angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3  # Edge normals.
  edges = [u * np.cos(t) + v * np.sin(t) for t in angles]
  return np.max(np.stack(edges), axis=0) - radius / 2


def render(factors: Factors, image_size: int) -> np.ndarray:
  """Images of `factors`: uint8 [N, image_size, image_size, 1]."""
  n = len(factors)
  images_NHW = np.zeros((n, image_size, image_size), np.uint8)
  centres = np.arange(image_size, dtype=np.float32) + 0.5  # Pixel centres.
  cols, rows = centre_pixels(factors, image_size)
  radius = (factors.scale * RADIUS_FRACTION * image_size).astype(np.float32)
  for shape_id in range(len(SHAPE_NAMES)):
    for start in range(0, n, _RENDER_CHUNK):
      idx = np.arange(start, min(start + _RENDER_CHUNK, n))
      idx = idx[factors.shape[idx] == shape_id]
      if not len(idx):
        continue
      # Per-example values broadcast against the [H, W] pixel grid.
      col, row, rot, rad = (
          a[idx].astype(np.float32)[:, None, None]
          for a in (cols, rows, factors.rotation, radius)
      )
      dx = centres[None, None, :] - col
      dy = centres[None, :, None] - row
      cos, sin = np.cos(rot), np.sin(rot)
      u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # Rotate by -rotation.
      distance = _signed_distance(u, v, shape_id, rad)
      coverage = np.clip(0.5 - distance, 0.0, 1.0)
      images_NHW[idx] = np.rint(coverage * 255).astype(np.uint8)
  return images_NHW[..., None]


class ShapesSource(ArraySource):
  """A split of the shapes dataset, rendered once into memory.

  With `labels=True` the source carries labels (see `vae_jax.data.source`):
  each example's shape id, an index into SHAPE_NAMES.
  """

  def __init__(
      self,
      images_NHWC: np.ndarray,
      factor_table: Factors,
      *,
      labels: bool = False,
  ):
    super().__init__(images_NHWC, factor_table.shape if labels else None)
    self.factor_table = factor_table

  @classmethod
  def generate(
      cls, split: str, num_examples: int, image_size: int, *, labels=False
  ) -> ShapesSource:
    factor_table = sample_factors(np.arange(num_examples), split)
    return cls(render(factor_table, image_size), factor_table, labels=labels)

  def factors(self, index: int) -> dict[str, float | int]:
    """Example `index`'s factors: shape (int), scale, rotation, x, y."""
    return self.factor_table.row(index)

  def head(self, n: int) -> ShapesSource:
    return ShapesSource(
        self.images_NHWC[:n],
        self.factor_table.take(slice(0, n)),
        labels=self.labels is not None,
    )


def load_shapes(
    *, num_train: int, num_test: int, image_size: int, labels: bool = False
) -> tuple[ShapesSource, ShapesSource]:
  """The (train, test) splits; `labels=True` labels them with the shape id."""
  return (
      ShapesSource.generate("train", num_train, image_size, labels=labels),
      ShapesSource.generate("test", num_test, image_size, labels=labels),
  )
