"""From stored uint8 pixels to what the likelihood models, and the bits/dim that follows.

- Bernoulli likelihood: x = intensity / 255, then, with `data.binarize`,
  dynamically binarised, x ~ Bernoulli(intensity / 255), fresh each step
  (Salakhutdinov & Murray 2008); the probability is exact at 0 and 255 and
  within 2^-16 otherwise (`example_rng.binarize`). Evaluation binarises with
  fixed keys.
- Gaussian likelihood: with `data.dequantize`, x = (k + u) / 256 with
  u ~ U[0, 1): a density p on [0, 1]^D then bounds the discrete probability,
  log P(k) >= E_u log p((k + u) / 256) - D log 256 (Theis et al. 2016), so
  bits/dim is an honest upper bound on the discrete data's.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import example_rng


def model_input(image_BHWC: jax.Array, rng: jax.Array, *, config: ml_collections.ConfigDict) -> jax.Array:
  """uint8 [B, H, W, C] -> float32 x in [0, 1]. `rng` holds one key per example, [B]."""
  if config.model.likelihood == "bernoulli" and config.data.binarize:
    return example_rng.binarize(rng, image_BHWC)
  x = image_BHWC.astype(jnp.float32)
  if config.model.likelihood == "gaussian" and config.data.dequantize:
    return (x + example_rng.uniform(rng, x.shape[1:])) / 256.0
  return x / 255.0


def nats_to_bits_per_dim(neg_log_lik: jax.Array, num_dims: int, *,
                         config: ml_collections.ConfigDict) -> jax.Array:
  """Converts a per-image negative log-likelihood (bound) in nats to bits per dimension.

  For dequantised continuous data the density on [0, 1]^D is converted to the
  probability of the 8-bit values by adding D log 256 nats (see module doc).
  """
  offset = 0.0
  if config.model.likelihood == "gaussian" and config.data.dequantize:
    offset = num_dims * math.log(256.0)
  return (neg_log_lik + offset) / (num_dims * math.log(2.0))
