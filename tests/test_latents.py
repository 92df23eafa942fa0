"""vae_jax/latents.py: slerp and lerp against closed forms, per-unit KL against NumPy and the model's
own KL, traversals and interpolation paths against independent decodes, and the run-level grids."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import latents
from vae_jax import losses
from vae_jax import model as model_lib
from vae_jax import sampling
from vae_jax.config import base_config
from vae_jax.errors import UserError
from vae_jax.inference import Trained

SHAPE = (8, 8, 1)
Z = 4


def _model(num_classes=0, name="vae", **model):
  c = base_config()
  c.data.image_size = SHAPE[0]
  c.data.binarize = False  # model_input = image / 255, as latents reads images
  c.model.name, c.model.hidden, c.model.latent_dim, c.model.num_classes = name, (16,), Z, num_classes
  c.model.update(model)
  m = model_lib.make_model(c, SHAPE)
  params = model_lib.init(m, jax.random.key(0), SHAPE)
  if num_classes:  # a non-trivial learned prior p(z|y): means and log-variances away from N(0, 1)
    rng = np.random.default_rng(1)
    params = dict(params, prior_by_class=jnp.asarray(rng.normal(0, 0.7, (num_classes, 2 * Z)), jnp.float32))
  return c, m, params


def _images(n, seed=0, binary=False):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (n, *SHAPE))
  return (np.where(x > 127, 255, 0) if binary else x).astype(np.uint8)


def _posterior(params, images, m, y=None):
  q = model_lib.encode(params, jnp.asarray(images, jnp.float32) / 255.0, model=m, y=y)
  return np.asarray(q.mean, np.float64), np.asarray(q.logvar, np.float64)


def _decode(params, z, m, y=None):
  return np.clip(np.asarray(model_lib.decode(params, jnp.asarray(z, jnp.float32), model=m, y=y).mean), 0, 1)


# --- lerp and slerp ----------------------------------------------------------------------------

def _shoemake(a, b, t):
  """Independent float64 slerp via arccos, one pair."""
  omega = math.acos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))
  return np.stack([(math.sin((1 - s) * omega) * a + math.sin(s * omega) * b) / math.sin(omega) for s in t])


def test_slerp_and_lerp_endpoints_are_exact():
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.normal(size=(6, 5)) * 3, jnp.float32) for _ in range(2))
  t = jnp.linspace(0.0, 1.0, 7)
  for path in (latents.slerp, latents.lerp, jax.jit(latents.slerp)):
    z = np.asarray(path(a, b, t))
    assert z.shape == (6, 7, 5)
    np.testing.assert_array_equal(z[:, 0], a)
    np.testing.assert_array_equal(z[:, -1], b)


def test_slerp_matches_shoemake_and_keeps_the_norm_on_a_sphere():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(2, 8)), rng.normal(size=(2, 8))
  b = b / np.linalg.norm(b, axis=1, keepdims=True) * np.linalg.norm(a, axis=1, keepdims=True)  # |a| = |b|
  t = np.linspace(0, 1, 9)
  z = np.asarray(latents.slerp(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), jnp.asarray(t)))
  for i in range(2):
    np.testing.assert_allclose(z[i], _shoemake(a[i], b[i], t), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z[i], axis=-1), np.linalg.norm(a[i]), rtol=1e-5)
  lines = np.asarray(latents.lerp(jnp.asarray(a), jnp.asarray(b), jnp.asarray(t)))
  assert np.all(np.linalg.norm(lines[:, 4], axis=-1) < 0.99 * np.linalg.norm(a, axis=-1))  # the chord dips


def test_slerp_midpoint_of_orthogonal_unit_vectors():
  q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(4, 4)))  # a random orthonormal pair
  a, b = q[:, :1].T, q[:, 1:2].T
  z = np.asarray(latents.slerp(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), jnp.array([0.5])))
  np.testing.assert_allclose(z[0, 0], (a[0] + b[0]) / math.sqrt(2), atol=1e-6)
  line = np.asarray(latents.lerp(jnp.asarray(a), jnp.asarray(b), jnp.array([0.5])))
  np.testing.assert_allclose(line[0, 0], (a[0] + b[0]) / 2, atol=1e-7)


def test_slerp_is_the_line_for_parallel_opposite_and_zero_vectors():
  a = jnp.array([[1.0, -2.0, 0.5], [1.0, -2.0, 0.5], [0.0, 0.0, 0.0], [0.3, 0.1, 0.2]])
  b = jnp.array([[3.0, -6.0, 1.5], [-2.0, 4.0, -1.0], [1.0, 2.0, 3.0], [0.3, 0.1, 0.2]])
  t = jnp.linspace(0.0, 1.0, 5)
  z, line = np.asarray(latents.slerp(a, b, t)), np.asarray(latents.lerp(a, b, t))
  assert np.all(np.isfinite(z))
  np.testing.assert_allclose(z, line, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(line[0, 2], 2.0 * np.asarray(a[0]), rtol=1e-6)  # half way from a to 3a


# --- per-unit KL -------------------------------------------------------------------------------

def test_dimension_kl_matches_numpy_and_the_models_own_kl():
  _, m, params = _model()
  x = _images(40, binary=True)
  kl = np.asarray(latents.dimension_kl(params, x, model=m))
  mu, logvar = _posterior(params, x, m)
  want = np.mean(0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar), axis=0)
  assert kl.shape == (Z,) and np.all(kl > 0)
  np.testing.assert_allclose(kl, want, rtol=1e-5, atol=1e-7)
  keys = jax.random.split(jax.random.key(3), len(x))
  terms = losses.elbo_terms(params, {"image": jnp.asarray(x)}, keys, model=m)
  np.testing.assert_allclose(kl.sum(), float(jnp.mean(terms["kl"])), rtol=1e-5)


def test_dimension_kl_of_a_conditional_model_uses_the_class_prior():
  _, m, params = _model(num_classes=3)
  x, y = _images(30, seed=4), np.arange(30, dtype=np.int32) % 3
  kl = np.asarray(latents.dimension_kl(params, x, model=m, y=jnp.asarray(y)))
  mu, logvar = _posterior(params, x, m, y=jnp.asarray(y))
  prior = np.asarray(params["prior_by_class"], np.float64)[y]
  m_p, lv_p = prior[:, :Z], prior[:, Z:]
  want = np.mean(0.5 * (lv_p - logvar + (np.exp(logvar) + (mu - m_p) ** 2) / np.exp(lv_p) - 1.0), axis=0)
  np.testing.assert_allclose(kl, want, rtol=1e-5, atol=1e-6)
  inf = model_lib.infer(params, model_lib.encode(params, jnp.asarray(x, jnp.float32) / 255.0, model=m,
                                                  y=jnp.asarray(y)),
                        jax.random.split(jax.random.key(0), 30), model=m, y=jnp.asarray(y))
  np.testing.assert_allclose(kl.sum(), float(jnp.mean(inf.groups[0].kl)), rtol=1e-5)
  standard = np.mean(0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar), axis=0)
  assert np.abs(kl - standard).max() > 0.05  # the test tells the class prior from N(0, 1)


def test_active_unit_order_is_descending():
  kl = jnp.array([0.5, 2.0, 0.0, 2.0, 1.0])
  order = np.asarray(latents.active_unit_order(kl))
  np.testing.assert_array_equal(order, [1, 3, 4, 0, 2])
  _, m, params = _model()
  kl = np.asarray(latents.dimension_kl(params, _images(20), model=m))
  order = np.asarray(latents.active_unit_order(kl))
  assert sorted(order) == list(range(Z)) and np.all(np.diff(kl[order]) <= 0)


def test_per_unit_tools_refuse_hierarchical_models():
  c, m, params = _model(name="ladder", latent_dims=(3, 2), hidden=(16, 8), layers_per_latent=1)
  x = _images(2)
  with pytest.raises(UserError, match="one latent group; the Ladder model has 2"):
    latents.dimension_kl(params, x, model=m)
  with pytest.raises(UserError, match="one latent group"):
    latents.traversal_grid_images(params, x[:1], model=m, units=jnp.array([0]), values_V=jnp.zeros(3))
  # Interpolation works for it: every group, its ends the reconstructions (zero-noise path).
  out = np.asarray(latents.interpolation_path(params, x[:1], x[1:], model=m, num_steps=3, method="slerp"))
  recon = np.asarray(sampling.reconstructions(params, x, model=m))
  np.testing.assert_allclose(out[[0, 2]], recon, atol=1e-6)


# --- traversals --------------------------------------------------------------------------------

def test_traversal_latents_set_one_unit_in_prior_std_units():
  mu = jnp.array([0.1, -0.2, 0.3, 0.4])
  mean_p, std_p = jnp.array([1.0, 2.0, -1.0, 0.0]), jnp.array([0.5, 2.0, 1.0, 3.0])
  values = jnp.array([-3.0, 0.0, 1.5])
  z = np.asarray(latents.traversal_latents(mu, mean_p, std_p, jnp.array([2, 0]), values))
  assert z.shape == (2, 3, 4)
  np.testing.assert_allclose(z[0, :, 2], [-1.0 - 3.0, -1.0, -1.0 + 1.5])
  np.testing.assert_allclose(z[1, :, 0], [1.0 - 1.5, 1.0, 1.0 + 0.75])
  np.testing.assert_array_equal(z[0][:, [0, 1, 3]], np.broadcast_to(mu[np.array([0, 1, 3])], (3, 3)))
  np.testing.assert_array_equal(z[1][:, 1:], np.broadcast_to(mu[1:], (3, 3)))


@pytest.mark.parametrize("num_classes", [0, 3])
def test_traversal_rows_are_independent_decodes_with_one_unit_replaced(num_classes):
  _, m, params = _model(num_classes=num_classes)
  x = _images(1, seed=5)
  y = jnp.array([2], jnp.int32) if num_classes else None
  units, values = np.array([3, 1]), np.linspace(-3, 3, 5)
  out = np.asarray(latents.traversal_grid_images(params, x, model=m, units=jnp.asarray(units),
                                                 values_V=jnp.asarray(values), y=y))
  assert out.shape == (2 * 5, *SHAPE) and out.min() >= 0 and out.max() <= 1
  mu, _ = _posterior(params, x, m, y=y)
  if num_classes:  # documented: z_u = prior mean + value * prior std, the prior of class y
    prior = np.asarray(params["prior_by_class"], np.float64)[2]
    mean_p, std_p = prior[:Z], np.exp(0.5 * prior[Z:])
  else:
    mean_p, std_p = np.zeros(Z), np.ones(Z)
  y_v = None if y is None else jnp.full((5,), 2, jnp.int32)
  for i, u in enumerate(units):
    z = np.repeat(mu, 5, axis=0)
    z[:, u] = mean_p[u] + values * std_p[u]
    np.testing.assert_allclose(out[5 * i:5 * i + 5], _decode(params, z, m, y_v), atol=1e-6)
  # The check has power: an offset from the posterior mean instead would look different.
  z = np.repeat(mu, 5, axis=0)
  z[:, units[0]] = mu[0, units[0]] + values
  assert np.abs(out[:5] - _decode(params, z, m, y_v)).max() > 1e-3


# --- interpolation paths -----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["line", "slerp"])
def test_interpolation_path_ends_decode_the_posterior_means(method):
  _, m, params = _model()
  a, b = _images(3, seed=6), _images(3, seed=7)
  out = np.asarray(latents.interpolation_path(params, a, b, model=m, num_steps=5, method=method))
  assert out.shape == (15, *SHAPE)
  mu_a, mu_b = _posterior(params, a, m)[0], _posterior(params, b, m)[0]
  rows = out.reshape(3, 5, *SHAPE)
  np.testing.assert_allclose(rows[:, 0], _decode(params, mu_a, m), atol=1e-6)
  np.testing.assert_allclose(rows[:, -1], _decode(params, mu_b, m), atol=1e-6)
  mid = [_shoemake(mu_a[i], mu_b[i], [0.5])[0] if method == "slerp" else (mu_a[i] + mu_b[i]) / 2
         for i in range(3)]
  np.testing.assert_allclose(rows[:, 2], _decode(params, np.stack(mid), m), atol=1e-5)


def test_interpolation_path_refuses_an_unknown_method():
  _, m, params = _model()
  with pytest.raises(UserError, match="'arc' is not one of line, slerp"):
    latents.interpolation_path(params, _images(1), _images(1), model=m, num_steps=3, method="arc")


# --- grids for a trained run -------------------------------------------------------------------

def _run(labels=False):
  c = base_config()
  c.data.shapes_num_train, c.data.shapes_num_test, c.data.labels = 64, 40, labels
  c.model.hidden, c.model.latent_dim, c.model.num_classes = (16,), Z, 3 if labels else 0
  shape = (28, 28, 1)
  m = model_lib.make_model(c, shape)
  return Trained(config=c, model=m, params=model_lib.init(m, jax.random.key(0), shape), step=0)


@pytest.mark.parametrize("labels", [False, True])
def test_traversal_grid_rows_follow_the_kl_order(labels):
  run = _run(labels)
  from vae_jax import data
  test = data.load_datasets(run.config.data).test
  grid = latents.traversal_grid(run, num_units=2, num_values=3, span=2.0, image_index=1)
  assert grid.size == (3 * 29 + 1, 2 * 29 + 1)
  x, y = data.source.gather_examples(test, np.arange(len(test)))
  order = latents.active_unit_order(latents.dimension_kl(run.params, x, model=run.model, y=y))
  want = latents.traversal_grid_images(run.params, x[1:2], model=run.model, units=order[:2],
                                       values_V=jnp.array([-2.0, 0.0, 2.0]), y=None if y is None else y[1:2])
  from vae_jax import images
  np.testing.assert_array_equal(np.asarray(grid), np.asarray(images.grid_image(np.asarray(want), ncol=3)))
  with pytest.raises(UserError, match="cannot traverse 5 latent units: this model has 4"):
    latents.traversal_grid(run, num_units=5, num_values=3, span=2.0)


def test_interpolation_grid_rows_join_image_i_to_image_rows_plus_i_and_bad_requests():
  """Row i of the grid is the slerp path from test image i to test image num_rows + i."""
  run = _run()
  from vae_jax import data, images
  test = data.load_datasets(run.config.data).test
  x, _ = data.source.gather_examples(test, np.arange(4))
  assert not np.array_equal(x[0], x[2]) and not np.array_equal(x[1], x[3])
  grid = latents.interpolation_grid(run, num_rows=2, num_steps=4, method="slerp")
  want = latents.interpolation_path(run.params, x[:2], x[2:], model=run.model, num_steps=4, method="slerp")
  np.testing.assert_array_equal(np.asarray(grid), np.asarray(images.grid_image(np.asarray(want), ncol=4)))
  crossed = latents.interpolation_path(run.params, x[:2], x[[3, 2]], model=run.model, num_steps=4,
                                       method="slerp")
  assert not np.array_equal(np.asarray(grid), np.asarray(images.grid_image(np.asarray(crossed), ncol=4)))
  with pytest.raises(UserError, match="at most 20 rows"):
    latents.interpolation_grid(run, num_rows=21, num_steps=4)
