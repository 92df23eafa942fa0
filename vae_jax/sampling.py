"""Jitted generation: prior samples and reconstructions, for any model (interpolations: latents.py).

All return float images in [0, 1], [N, H, W, C]. `mode="mean"` shows the
likelihood's mean (Bernoulli probabilities, Gaussian means), the usual way to
display VAE samples; `mode="sample"` draws pixels from p(x|z). `y` is an
optional label per image for a conditional model.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from vae_jax import model as model_lib
from vae_jax.train_step import example_keys

MODES = ("mean", "sample")


def _show(p_x, keys_B: jax.Array | None, mode: str) -> jax.Array:
  x = p_x.mean if mode == "mean" else p_x.sample(keys_B)
  return jnp.clip(x, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=("model", "num", "mode"))
def prior_samples(params, rng: jax.Array, temperature: float | jax.Array = 1.0, *,
                  model, num: int, mode: str = "mean", y: jax.Array | None = None) -> jax.Array:
  """x ~ p(x|z), every latent group drawn from the prior at `temperature`."""
  z_rng, x_rng = jax.random.split(rng)
  index = jnp.arange(num)
  out = model_lib.generate(params, example_keys(z_rng, index), model=model, y=y, temperature=temperature)
  return _show(out.p_x, example_keys(x_rng, index), mode)


def _to_unit(images_BHWC: jax.Array) -> jax.Array:
  return images_BHWC.astype(jnp.float32) / 255.0


@functools.partial(jax.jit, static_argnames=("model",))
def reconstructions(params, images_BHWC: jax.Array, *, model, y: jax.Array | None = None) -> jax.Array:
  """Mean of p(x|z) at the posterior's zero-noise path (z = E[q(z|x)] for one group), for uint8 images."""
  return _show(model_lib.reconstruct(params, _to_unit(images_BHWC), model=model, y=y), None, "mean")
