"""Tests for vae_jax.data.shapes: the procedural shapes dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_jax.data import shapes

SIZE = 28


def _factors(**values) -> shapes.Factors:
  """One example's factors; unspecified ones take a neutral value."""
  defaults = dict(shape=0, scale=1.0, rotation=0.0, x=0.5, y=0.5)
  defaults.update(values)
  return shapes.Factors(**{k: np.array([v]) for k, v in defaults.items()})


def _render_one(image_size: int = SIZE, **values) -> np.ndarray:
  return shapes.render(_factors(**values), image_size)[0, ..., 0].astype(
      np.float64
  )


def test_deterministic_and_index_pure():
  a = shapes.ShapesSource.generate("train", 300, SIZE)
  b = shapes.ShapesSource.generate("train", 300, SIZE)
  np.testing.assert_array_equal(a.images_NHWC, b.images_NHWC)
  # Example i does not depend on how many examples were generated.
  small = shapes.ShapesSource.generate("train", 20, SIZE)
  np.testing.assert_array_equal(small.images_NHWC, a.images_NHWC[:20])
  single = shapes.sample_factors(np.array([123]), "train")
  assert single.row(0) == a.factors(123)


def test_splits_differ():
  train = shapes.ShapesSource.generate("train", 100, SIZE)
  test = shapes.ShapesSource.generate("test", 100, SIZE)
  assert not np.array_equal(train.images_NHWC, test.images_NHWC)


def test_examples_are_distinct_and_valid():
  source = shapes.ShapesSource.generate("train", 2000, SIZE)
  images = source.images_NHWC
  assert images.shape == (2000, SIZE, SIZE, 1) and images.dtype == np.uint8
  # Distinct factors give distinct images (identical factors can recur by
  # chance: ellipses have only 6 * 32 * 32 combinations).
  table = source.factor_table
  factor_rows = np.stack(
      [table.shape, table.scale, table.rotation, table.x, table.y], 1
  )
  num_distinct_factors = len(np.unique(factor_rows, axis=0))
  assert num_distinct_factors > 1900
  assert (
      len(np.unique(images.reshape(len(images), -1), axis=0))
      == num_distinct_factors
  )
  assert (images.reshape(2000, -1).max(1) == 255).all()  # Solid ink inside.
  assert set(np.unique(table.shape)) == {0, 1, 2}
  assert len(np.unique(table.scale)) == 6 and len(np.unique(table.x)) == 32
  assert (table.rotation[table.shape == 1] == 0).all()  # Ellipses don't rotate.
  assert table.rotation[table.shape == 0].max() < math.pi / 2
  assert table.rotation[table.shape == 2].max() < 2 * math.pi / 3


def test_centre_of_mass_follows_x_and_y():
  source = shapes.ShapesSource.generate("train", 500, SIZE)
  images = source.images_NHWC[..., 0].astype(np.float64)
  grid = np.arange(SIZE) + 0.5
  mass = images.sum(axis=(1, 2))
  col = (images.sum(axis=1) * grid).sum(1) / mass
  row = (images.sum(axis=2) * grid).sum(1) / mass
  # The documented mapping: [0, 1] -> [margin, SIZE - margin] pixels.
  margin = shapes.RADIUS_FRACTION * SIZE + 1
  table = source.factor_table
  expected_col = margin + table.x * (SIZE - 2 * margin)
  expected_row = margin + table.y * (SIZE - 2 * margin)
  assert np.abs(col - expected_col).max() < 0.5
  assert np.abs(row - expected_row).max() < 0.5


@pytest.mark.parametrize("shape_id", [0, 1, 2])
@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_ink_area_matches_geometry(shape_id, scale):
  # Analytic areas for outer radius r (a square's circumradius, an ellipse's
  # semi-major axis, a triangle's circumradius). Rendered at 4x the usual
  # size so anti-aliasing error at the edges is small relative to the area.
  size = 4 * SIZE
  r = scale * shapes.RADIUS_FRACTION * size
  area = {
      0: 2 * r**2,
      1: math.pi * r * shapes.ELLIPSE_ASPECT * r,
      2: 3 * math.sqrt(3) / 4 * r**2,
  }[shape_id]
  ink = (
      _render_one(
          size, shape=shape_id, scale=scale, rotation=0.3 * (shape_id != 1)
      ).sum()
      / 255
  )
  assert ink == pytest.approx(area, rel=0.02)


def test_area_grows_with_scale():
  for shape_id in range(3):
    areas = [_render_one(shape=shape_id, scale=s).sum() for s in shapes.SCALES]
    assert np.all(np.diff(areas) > 0)


def test_shapes_stay_inside_the_image():
  for shape_id in range(3):
    for x in (0.0, 1.0):
      for y in (0.0, 1.0):
        for rotation in np.linspace(0, math.pi / 2, 7):
          image = _render_one(shape=shape_id, x=x, y=y, rotation=rotation)
          border = np.concatenate(
              [image[0], image[-1], image[:, 0], image[:, -1]]
          )
          assert border.max() == 0


def test_rotation_changes_square_but_period_does_not():
  base = _render_one(SIZE * 2, shape=0, rotation=0.0)
  assert not np.array_equal(
      base, _render_one(SIZE * 2, shape=0, rotation=math.pi / 8)
  )
  # A quarter turn maps the square onto itself (up to float rounding).
  turned = _render_one(SIZE * 2, shape=0, rotation=math.pi / 2)
  assert np.abs(base - turned).max() <= 1


def test_head_keeps_factors():
  source = shapes.ShapesSource.generate("test", 50, SIZE)
  first = source.head(10)
  assert len(first) == 10 and first.factors(9) == source.factors(9)
  np.testing.assert_array_equal(first[3], source[3])
