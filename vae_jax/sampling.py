"""Jitted generation: prior samples, reconstructions and latent interpolations.

All return float images in [0, 1], [N, H, W, C]. `mode="mean"` shows the
likelihood's mean (Bernoulli probabilities, Gaussian means), the usual way to
display VAE samples; `mode="sample"` draws pixels from p(x|z).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from vae_jax import model as model_lib

MODES = ("mean", "sample")


def _show(p_x, rng: jax.Array, mode: str) -> jax.Array:
  x = p_x.mean() if mode == "mean" else p_x.sample(rng)
  return jnp.clip(x, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=("model", "num", "mode"))
def prior_samples(params, rng: jax.Array, temperature: float | jax.Array = 1.0, *,
                  model: model_lib.VAE, num: int, mode: str = "mean") -> jax.Array:
  """x ~ p(x|z), z ~ N(0, temperature^2 I)."""
  z_rng, x_rng = jax.random.split(rng)
  p_x = model_lib.prior_sample(params, z_rng, num, model=model, temperature=temperature)
  return _show(p_x, x_rng, mode)


def _to_unit(images_BHWC: jax.Array) -> jax.Array:
  return images_BHWC.astype(jnp.float32) / 255.0


@functools.partial(jax.jit, static_argnames=("model",))
def reconstructions(params, images_BHWC: jax.Array, *, model: model_lib.VAE) -> jax.Array:
  """Mean of p(x|z) at the posterior mean z = E[q(z|x)], for uint8 images."""
  q_z = model_lib.encode(params, _to_unit(images_BHWC), model=model)
  return _show(model_lib.decode(params, q_z.mean, model=model), None, "mean")


@functools.partial(jax.jit, static_argnames=("model", "num_steps"))
def interpolations(params, a_BHWC: jax.Array, b_BHWC: jax.Array, *, model: model_lib.VAE,
                   num_steps: int) -> jax.Array:
  """Decodes z = (1 - t) z_a + t z_b for t in linspace(0, 1, num_steps) between posterior means.

  Returns [B * num_steps, H, W, C]: row i runs from image a_i to image b_i.
  """
  z_a = model_lib.encode(params, _to_unit(a_BHWC), model=model).mean
  z_b = model_lib.encode(params, _to_unit(b_BHWC), model=model).mean
  t_T = jnp.linspace(0.0, 1.0, num_steps)
  z_BTZ = z_a[:, None] + t_T[None, :, None] * (z_b - z_a)[:, None]
  z = z_BTZ.reshape(-1, z_a.shape[-1])
  return _show(model_lib.decode(params, z, model=model), None, "mean")
