"""Bernoulli pixels: p(x | z) = prod_i Bern(x_i; sigmoid(l_i)), for binary(-ised) images.

Input transform: with `data.binarize`, x ~ Bernoulli(k / 255) drawn fresh
each step (dynamic binarisation, Salakhutdinov & Murray 2008); exact at 0 and
255 and within 2^-16 between (`example_rng.binarize`). Evaluation binarises
with fixed per-example keys. Without it, x = k / 255 (the grey-level
"Bernoulli" objective, which is not a likelihood of the 8-bit data).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import example_rng
from vae_jax.distributions import Bernoulli
from vae_jax.likelihoods.base import Likelihood


class BernoulliLikelihood(Likelihood):
  binarize: bool = True

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "BernoulliLikelihood":
    return cls(binarize=bool(config.data.binarize))

  def model_input(self, image_BHWC: jax.Array, keys_B: jax.Array) -> jax.Array:
    if self.binarize:
      return example_rng.binarize(keys_B, image_BHWC)
    return image_BHWC.astype(jnp.float32) / 255.0

  def __call__(self, logits_BHWC: jax.Array) -> Bernoulli:
    return Bernoulli(logits_BHWC)
