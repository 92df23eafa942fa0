"""Looking inside the latent space: interpolation paths, per-unit KL, and latent traversals.

Pure, jitted functions over explicit params (the model static), as in
`sampling.py`; images in are uint8 [B, H, W, C], read as x = image / 255 (the
grey levels, as `sampling.reconstructions` reads them: for a Bernoulli model
trained on dynamically binarised images, the expectation of its input); images
out are the likelihood's mean, clipped to [0, 1].

  lerp, slerp                     paths between two batches of vectors
  interpolation_path              decoded paths between the posterior means of two images
  dimension_kl, active_unit_order E_x KL(q(z_u|x) || p(z_u)) per unit, and units by it
  traversal_latents               one image's code with one unit swept over a grid of values
  traversal_grid_images           those codes decoded
  traversal_grid, interpolation_grid
                                  PIL grids for a trained run (`inference.Trained`)

Per-unit KL and traversals need one latent group that is a vector, with a
diagonal Gaussian posterior and prior (`vae`, conditional or not); other
models are refused with a `UserError`. Interpolation works for every model
with an encoder (each latent group is interpolated).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from vae_jax import data
from vae_jax import images
from vae_jax import model as model_lib
from vae_jax.data.source import gather_examples
from vae_jax.distributions import DiagGaussian
from vae_jax.errors import UserError

METHODS = ("line", "slerp")
_MIN_ANGLE = 1e-4  # radians: closer to 0 or to pi than this, slerp is the straight line


@jax.jit
def lerp(a_BZ: jax.Array, b_BZ: jax.Array, t_T: jax.Array) -> jax.Array:
  """z_BTZ[b, t] = (1 - t) a_b + t b_b: the straight line, exactly a_b at t = 0 and b_b at t = 1."""
  t = t_T[None, :, None]
  return (1.0 - t) * a_BZ[:, None, :] + t * b_BZ[:, None, :]


def _angle(a_BZ: jax.Array, b_BZ: jax.Array) -> jax.Array:
  """The angle between a_b and b_b, [B], in [0, pi]; 0 when either is the zero vector.

  Omega = 2 atan2(|a^ - b^|, |a^ + b^|) with a^ = a / |a| (Kahan): accurate near 0 and pi,
  where arccos(a^ . b^) loses half its digits.
  """
  na_B1 = jnp.linalg.norm(a_BZ, axis=-1, keepdims=True)
  nb_B1 = jnp.linalg.norm(b_BZ, axis=-1, keepdims=True)
  nonzero_B1 = (na_B1 > 0) & (nb_B1 > 0)
  ua = a_BZ / jnp.where(nonzero_B1, na_B1, 1.0)
  ub = b_BZ / jnp.where(nonzero_B1, nb_B1, 1.0)
  omega_B = 2.0 * jnp.arctan2(jnp.linalg.norm(ua - ub, axis=-1), jnp.linalg.norm(ua + ub, axis=-1))
  return jnp.where(nonzero_B1[:, 0], omega_B, 0.0)


@jax.jit
def slerp(a_BZ: jax.Array, b_BZ: jax.Array, t_T: jax.Array) -> jax.Array:
  """Spherical interpolation (Shoemake 1985), z_BTZ, applied to the vectors as they are:

      slerp(a, b; t) = sin((1 - t) Omega) / sin Omega  a  +  sin(t Omega) / sin Omega  b,

  Omega the angle between a and b. It is exactly a at t = 0 and b at t = 1; when |a| = |b| every
  point has that norm (the great circle), e.g. (a + b) / sqrt(2) at t = 1/2 for orthogonal unit
  vectors; with |a| != |b| the norm varies smoothly between them. Where Omega is within
  1e-4 rad of 0 (parallel: slerp and the line differ by O(Omega^2)) or of pi (opposite: no
  unique great circle), or a or b is zero, it is `lerp`.
  """
  omega_B = _angle(a_BZ, b_BZ)
  spherical_B = (omega_B > _MIN_ANGLE) & (omega_B < jnp.pi - _MIN_ANGLE)
  omega_B = jnp.where(spherical_B, omega_B, jnp.pi / 2)  # any safe angle where unused
  theta_BT = omega_B[:, None] * t_T[None, :]
  sin_B1 = jnp.sin(omega_B)[:, None]
  # sin(Omega) / sin(Omega) pinned to 1: XLA's vectorised sin can round one argument differently
  # in different lanes, which would leave the ends an ulp off a and b.
  wa_BT = jnp.where(t_T == 0.0, 1.0, jnp.sin(omega_B[:, None] - theta_BT) / sin_B1)
  wb_BT = jnp.where(t_T == 1.0, 1.0, jnp.sin(theta_BT) / sin_B1)
  arc = wa_BT[..., None] * a_BZ[:, None, :] + wb_BT[..., None] * b_BZ[:, None, :]
  return jnp.where(spherical_B[:, None, None], arc, lerp(a_BZ, b_BZ, t_T))


_PATHS = {"line": lerp, "slerp": slerp}


def _check_method(method: str) -> None:
  if method not in _PATHS:
    raise UserError(f"interpolation method {method!r} is not one of {', '.join(METHODS)}")


def posterior_means(params, images_BHWC: jax.Array, *, model, y: jax.Array | None) -> list[jax.Array]:
  """Every group's z at the posterior's zero-noise path (its mean given the means above)."""
  x = images_BHWC.astype(jnp.float32) / 255.0
  context = model_lib.encode(params, x, model=model, y=y)
  keys = jax.random.split(jax.random.key(0), x.shape[0])  # unused at temperature 0
  inference = model_lib.infer(params, context, keys, model=model, y=y, temperature=0.0)
  return [g.z for g in inference.groups]


def _shown(p_x) -> jax.Array:
  return jnp.clip(p_x.mean, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=("model", "num_steps", "method"))
def _interpolation_path(params, a_BHWC, b_BHWC, y_a, *, model, num_steps: int, method: str):
  path = _PATHS[method]
  t_T = jnp.linspace(0.0, 1.0, num_steps)
  zs = []
  for z_a, z_b in zip(posterior_means(params, a_BHWC, model=model, y=y_a),
                      posterior_means(params, b_BHWC, model=model, y=y_a)):
    flat = path(z_a.reshape(z_a.shape[0], -1), z_b.reshape(z_b.shape[0], -1), t_T)  # [B, T, D]
    zs.append(flat.reshape(-1, *z_a.shape[1:]))
  y = None if y_a is None else jnp.repeat(y_a, num_steps)
  return _shown(model_lib.decode(params, tuple(zs), model=model, y=y))


def interpolation_path(params, a_BHWC_uint8: jax.Array, b_BHWC_uint8: jax.Array, *, model,
                       num_steps: int, method: str = "line", y_a: jax.Array | None = None) -> jax.Array:
  """Decoded paths between the posterior means of a_i and b_i, [B * num_steps, H, W, C] in [0, 1].

  Row i (images i*T .. i*T + T - 1) decodes path(z_a_i, z_b_i; t) for t = linspace(0, 1, T),
  path = `lerp` (method "line") or `slerp` ("slerp"); its first and last images decode the two
  posterior means themselves. Every latent group is interpolated (a map flattened to one
  vector), each at its posterior's zero-noise path. A conditional model encodes both ends and
  decodes the path with a's labels `y_a` (a row keeps one class and varies its style).
  """
  _check_method(method)
  return _interpolation_path(params, a_BHWC_uint8, b_BHWC_uint8, y_a, model=model,
                             num_steps=num_steps, method=method)


def _posterior_and_prior(params, images_BHWC: jax.Array, *, model,
                         y: jax.Array | None) -> tuple[DiagGaussian, DiagGaussian]:
  """(q(z|x), p(z) or p(z|y)), each [B, Z], of a one-group model with a vector Gaussian code.

  Raises UserError (at trace time) for any other model."""
  name = type(model).__name__
  if not getattr(model, "has_encoder", True):
    raise UserError(f"per-unit latent tools need an encoder; the {name} model has none")
  x = images_BHWC.astype(jnp.float32) / 255.0
  q_z = model_lib.encode(params, x, model=model, y=y)
  keys = jax.random.split(jax.random.key(0), x.shape[0])  # unused at temperature 0
  groups = model_lib.infer(params, q_z, keys, model=model, y=y, temperature=0.0).groups
  if len(groups) != 1:
    raise UserError(f"per-unit latent tools need a model with one latent group; the {name} model "
                    f"has {len(groups)} (interpolations work for it)")
  if not (isinstance(q_z, DiagGaussian) and q_z.mean.ndim == 2 and hasattr(model, "_prior")):
    raise UserError(f"per-unit latent tools need a vector latent with a diagonal Gaussian posterior "
                    f"and prior; the {name} model's latent is not one")
  p_z = model.apply({"params": params}, q_z.mean, y, method="_prior")
  return q_z, p_z


@functools.partial(jax.jit, static_argnames=("model",))
def dimension_kl(params, images_uint8: jax.Array, *, model, y: jax.Array | None = None) -> jax.Array:
  """Per latent unit u, the mean over the images of KL(q(z_u|x) || p(z_u)), kl_Z, in nats.

      KL_u(x) = 1/2 [logvar_p,u - logvar_q,u + (var_q,u + (mu_q,u - mu_p,u)^2) / var_p,u - 1]

  which for the N(0, 1) prior (num_classes = 0) is 1/2 [mu^2 + var - 1 - logvar]; a conditional
  model's prior is its class's p(z|y), with `y` the images' labels. The units sum to the
  model's closed-form KL of the same inputs. One-group vector models only (else UserError).
  """
  q, p = _posterior_and_prior(params, images_uint8, model=model, y=y)
  mean_p = jnp.broadcast_to(p.mean, q.mean.shape)
  logvar_p = jnp.broadcast_to(p.logvar, q.mean.shape)
  kl_BZ = 0.5 * (logvar_p - q.logvar - 1.0
                 + (jnp.exp(q.logvar) + jnp.square(q.mean - mean_p)) * jnp.exp(-logvar_p))
  return jnp.mean(kl_BZ, axis=0)


@jax.jit
def active_unit_order(kl_Z: jax.Array) -> jax.Array:
  """Unit indices [Z] by `dimension_kl`, largest first (ties: the lower index first)."""
  return jnp.argsort(-jnp.asarray(kl_Z), stable=True)


@jax.jit
def traversal_latents(mu_Z: jax.Array, prior_mean_Z: jax.Array, prior_std_Z: jax.Array,
                      units_U: jax.Array, values_V: jax.Array) -> jax.Array:
  """z_UVZ: the code mu_Z with unit units_U[i] set to prior_mean + values_V[j] * prior_std.

      z[i, j, u] = prior_mean_u + values_j * prior_std_u   if u = units_i,   else mu_u

  so `values_V` are absolute positions of the unit in its prior's standard deviations about the
  prior's mean (z_u = v for the N(0, 1) prior), whatever the image's own posterior mean.
  """
  mask_UZ = jnp.arange(mu_Z.shape[0])[None, :] == jnp.asarray(units_U)[:, None]
  target_UVZ = prior_mean_Z[None, None, :] + values_V[None, :, None] * prior_std_Z[None, None, :]
  return jnp.where(mask_UZ[:, None, :], target_UVZ, mu_Z[None, None, :])


@functools.partial(jax.jit, static_argnames=("model",))
def traversal_grid_images(params, image_uint8_1HWC: jax.Array, *, model, units: jax.Array,
                          values_V: jax.Array, y: jax.Array | None = None) -> jax.Array:
  """One image's posterior mean with each unit of `units` swept over `values_V`, decoded.

  Returns [len(units) * V, H, W, C] in [0, 1], row i for units[i], column j for values_V[j]:
  the likelihood's mean at `traversal_latents` (values in prior standard deviations about the
  prior's mean; for a conditional model, the prior of the image's class `y` [1], used to decode
  too). One-group vector models only (else UserError).
  """
  q, p = _posterior_and_prior(params, image_uint8_1HWC, model=model, y=y)
  mean_p = jnp.broadcast_to(p.mean, q.mean.shape)[0]
  std_p = jnp.exp(0.5 * jnp.broadcast_to(p.logvar, q.mean.shape)[0])
  z_UVZ = traversal_latents(q.mean[0], mean_p, std_p, units, jnp.asarray(values_V, jnp.float32))
  z_NZ = z_UVZ.reshape(-1, z_UVZ.shape[-1])
  y_N = None if y is None else jnp.broadcast_to(y, (z_NZ.shape[0],))
  return _shown(model_lib.decode(params, z_NZ, model=model, y=y_N))


# --- grids for a trained run -------------------------------------------------------------------

def _test_split(run):
  """The run's test split, read as `inference.first_test_images` reads it."""
  return data.load_datasets(run.config.data).test


def _gather(test, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
  return gather_examples(test, np.asarray(indices))


def _mean_dimension_kl(run, test, *, num: int = 1000, batch: int = 500) -> np.ndarray:
  """`dimension_kl` over the first `num` images of `test` (all, if fewer), in batches."""
  n = min(num, len(test))
  total = np.zeros((), np.float64)
  for start in range(0, n, batch):
    x, y = _gather(test, range(start, min(n, start + batch)))
    total = total + len(x) * np.asarray(dimension_kl(run.params, x, model=run.model, y=y), np.float64)
  return total / n


def traversal_grid(run, *, num_units: int, num_values: int, span: float,
                   image_index: int = 0) -> Image.Image:
  """Test image `image_index`'s code, its `num_units` highest-KL units swept, as a grid.

  Units are ordered by `dimension_kl` over the first 1,000 test images (row 0: the largest);
  column j sets the unit to linspace(-span, span, num_values)[j] prior standard deviations
  about the prior's mean (see `traversal_latents`). Not written.
  """
  latent_dim = int(getattr(run.model, "latent_dim", 0))
  if not 1 <= num_units <= max(latent_dim, 1):
    raise UserError(f"cannot traverse {num_units} latent units: this model has {latent_dim} "
                    f"(model.latent_dim); ask for 1..{latent_dim} (sample.py --traversal_units)")
  if num_values < 2 or span <= 0:
    raise UserError(f"a traversal needs num_values >= 2 and span > 0, got {num_values} and {span}")
  test = _test_split(run)
  if not 0 <= image_index < len(test):
    raise UserError(f"image_index {image_index} is not in the test split (0..{len(test) - 1})")
  units = active_unit_order(_mean_dimension_kl(run, test))[:num_units]
  x, y = _gather(test, [image_index])
  out = traversal_grid_images(run.params, x, model=run.model, units=units,
                              values_V=jnp.linspace(-span, span, num_values), y=y)
  return images.grid_image(np.asarray(out), ncol=num_values)


def interpolation_grid(run, *, num_rows: int, num_steps: int, method: str = "line") -> Image.Image:
  """Row i decodes a `method` path ("line" or "slerp") from test image i to test image
  num_rows + i, `num_steps` images; not written."""
  _check_method(method)
  test = _test_split(run)
  if 2 * num_rows > len(test):
    raise UserError(f"the test split has {len(test)} images; ask for at most {len(test) // 2} rows")
  x, y = _gather(test, range(2 * num_rows))
  out = interpolation_path(run.params, x[:num_rows], x[num_rows:], model=run.model, num_steps=num_steps,
                           method=method, y_a=None if y is None else y[:num_rows])
  return images.grid_image(np.asarray(out), ncol=num_steps)
