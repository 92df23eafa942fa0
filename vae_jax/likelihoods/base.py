"""The likelihood component p(x | z): one object that owns everything about the pixels.

A likelihood is a Flax module (it may own parameters, e.g. a learned sigma)
built from the config by `from_config`. It owns:

  out_channels(C)        how many maps per pixel the decoder must output
  model_input(img, k_B)  uint8 [B, H, W, C] -> float x in [0, 1]: the input
                         transform (binarise, dequantise or plain /255); the
                         encoder sees x and log_prob scores x
  __call__(out_BHWP)     the decoder's raw output -> a distribution with
                         `log_prob(x)` [B] (summed over pixels, nats), `mean`
                         and `sample(keys_B)` (images in [0, 1]); for missing
                         data, `log_prob(x, observed=...)` sums over the
                         observed pixels only (bool [B, H, W, 1])
  nats_to_bits_per_dim   per-image nats -> bits per dimension of the 8-bit data

Every likelihood works in the same space, x in [0, 1], so encoders, sampling
and image grids need not know which one is in use.

Adding one: a file with a `Likelihood` subclass and one line in
`likelihoods/__init__.py` (or name it in a config as 'package.module:Class').
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import ml_collections

from vae_jax.errors import UserError
from vae_jax.registry import Registry

LIKELIHOODS: Registry[type["Likelihood"]] = Registry("likelihood")


class Likelihood(nn.Module):
  """Base class; see the module doc for the contract."""

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "Likelihood":
    """The component as `config` describes it (reads `config.model` and the pixel keys of `config.data`)."""
    return cls()

  def out_channels(self, channels: int) -> int:
    return channels

  def model_input(self, image_BHWC: jax.Array, keys_B: jax.Array) -> jax.Array:
    raise NotImplementedError

  def nats_to_bits_per_dim(self, nats: jax.Array | float, num_dims: int) -> jax.Array | float:
    """bits/dim = nats / (D ln 2) for a likelihood of the discrete data itself."""
    return nats / (num_dims * math.log(2.0))


def make_likelihood(config: ml_collections.ConfigDict) -> Likelihood:
  """The likelihood named by `config.model.likelihood` (a registered name or 'module:Class')."""
  cls = LIKELIHOODS.get(config.model.likelihood)
  if not (isinstance(cls, type) and issubclass(cls, Likelihood)):
    raise UserError(f"likelihood {config.model.likelihood!r} is not a vae_jax.likelihoods.Likelihood subclass")
  return cls.from_config(config)
