"""Gaussian pixels N(x; mu, sigma^2), for continuous images in [0, 1].

sigma is `model.gaussian_std`, or with `model.learn_std` one learned value per
channel shared by all pixels (the sigma-VAE of Rybkin et al. 2021), started at
`gaussian_std`.

Input transform: with `data.dequantize`, x = (k + u) / 256, u ~ U[0, 1), always inside
bin k = [k/256, (k+1)/256) (float32 rounding at its upper edge is clamped). A
density p on [0, 1]^D then bounds the discrete probability,
log P(k) >= E_u log p((k + u) / 256) - D log 256 (Theis et al. 2016), so
bits/dim adds D log 256 nats and is an honest bound on the 8-bit data's.
Without it, x = k / 255 and bits/dim is of the density (not a bound).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import example_rng
from vae_jax.distributions import Gaussian
from vae_jax.errors import UserError
from vae_jax.likelihoods.base import Likelihood


class GaussianLikelihood(Likelihood):
  std: float = 0.1
  learn_std: bool = False
  dequantize: bool = True

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "GaussianLikelihood":
    if not config.model.gaussian_std > 0:
      raise UserError(f"model.gaussian_std must be > 0, got {config.model.gaussian_std}")
    return cls(std=float(config.model.gaussian_std), learn_std=bool(config.model.learn_std),
               dequantize=bool(config.data.dequantize))

  def model_input(self, image_BHWC: jax.Array, keys_B: jax.Array) -> jax.Array:
    x = image_BHWC.astype(jnp.float32)
    if self.dequantize:
      # float32 rounding of k + u can reach k + 1 (u near 1, k >= 2): keep x inside bin k.
      top = jnp.nextafter((x + 1.0) / 256.0, jnp.float32(0.0))
      return jnp.minimum((x + example_rng.uniform(keys_B, x.shape[1:])) / 256.0, top)
    return x / 255.0

  @nn.compact
  def __call__(self, loc_BHWC: jax.Array) -> Gaussian:
    log_std = jnp.full((loc_BHWC.shape[-1],), math.log(self.std), loc_BHWC.dtype)
    if self.learn_std:
      log_std = self.param("log_std", lambda _, shape: log_std, log_std.shape)
    return Gaussian(loc_BHWC, log_std)

  def nats_to_bits_per_dim(self, nats, num_dims: int):
    offset = num_dims * math.log(256.0) if self.dequantize else 0.0
    return (nats + offset) / (num_dims * math.log(2.0))
