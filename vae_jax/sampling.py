"""Jitted generation: prior samples, reconstructions and latent interpolations, for any model.

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


@functools.partial(jax.jit, static_argnames=("model", "num_steps"))
def interpolations(params, a_BHWC: jax.Array, b_BHWC: jax.Array, *, model,
                   num_steps: int, y_a: jax.Array | None = None) -> jax.Array:
  """Decodes z = (1 - t) z_a + t z_b for t in linspace(0, 1, num_steps) between posterior means.

  Every latent group is interpolated, each at its posterior's zero-noise path.
  A conditional model encodes both ends and decodes the line with a's labels
  `y_a` (so a row keeps one class and varies its style).
  Returns [B * num_steps, H, W, C]: row i runs from image a_i to image b_i.
  """
  def means(images):
    x = _to_unit(images)
    context = model_lib.encode(params, x, model=model, y=y_a)
    keys = jax.random.split(jax.random.key(0), x.shape[0])  # unused at temperature 0
    return [g.z for g in model_lib.infer(params, context, keys, model=model, y=y_a, temperature=0.0).groups]
  t_T = jnp.linspace(0.0, 1.0, num_steps)

  def line(z_a, z_b):
    t = t_T.reshape(1, num_steps, *([1] * (z_a.ndim - 1)))
    z = z_a[:, None] + t * (z_b - z_a)[:, None]
    return z.reshape(-1, *z_a.shape[1:])
  zs = [line(a, b) for a, b in zip(means(a_BHWC), means(b_BHWC))]
  y = None if y_a is None else jnp.repeat(y_a, num_steps)
  return _show(model_lib.decode(params, tuple(zs), model=model, y=y), None, "mean")
