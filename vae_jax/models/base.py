"""The model contract: latent groups, the likelihood, and what objectives read from them.

A model is a Flax module, chosen by `config.model.name`, with a latent code made
of groups z_1 ... z_G listed in generative order (group 0 is the top, drawn
from an unconditional prior; group g is drawn from p(z_g | z_<g)). Its methods,
for images x in [0, 1] and an optional label y (int [B], or None):

  encode(x, y) -> context            the deterministic part of inference (e.g.
                                     q(z|x)'s parameters, or bottom-up features)
  infer(context, keys_B, y, sample, temperature) -> Inference
                                     draws every group from the posterior and
                                     returns, per group, z_g, log q(z_g | .),
                                     log p(z_g | z_<g) at that draw and, where
                                     it exists, the closed-form KL(q || p); and
                                     the likelihood p(x | z)
  generate(keys_B, y, temperature) -> Generated
                                     draws every group from the prior (a
                                     temperature scales each group's standard
                                     deviation: a float, or one per group) and
                                     returns the groups and p(x | z)
  decode(zs, y) -> p(x | z)          the likelihood at given groups

`keys_B` holds one PRNG key per example. Group g of importance sample s draws
its noise from stream `example_rng.latent_stream(s, g)` of the example's key,
so draws never depend on the device split, and the k samples of IWAE and
IS-NLL are independent. `likelihood` is the model's `Likelihood` component
(`vae_jax.likelihoods`), which also owns the input transform.

Adding a model: a file with a `LatentModel` subclass that has a
`from_config(config, image_shape)` classmethod, and one line in
`models/__init__.py` (or name it as 'package.module:Class').
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax.errors import UserError
from vae_jax.registry import Registry

MODELS: Registry[type["LatentModel"]] = Registry("model")


@flax.struct.dataclass
class LatentGroup:
  """One latent group at one posterior draw; every field is per example, [B] (z: [B, ...])."""

  z: jax.Array
  log_q: jax.Array  # log q(z_g | x, ...) at the draw
  log_p: jax.Array  # log p(z_g | z_<g) at the draw
  kl: jax.Array | None = None  # closed-form KL(q || p) given the conditioning draws, if valid

  def kl_or_estimate(self) -> jax.Array:
    """The closed-form KL where the model gives one, else the one-sample estimate log q - log p."""
    return self.kl if self.kl is not None else self.log_q - self.log_p


@flax.struct.dataclass
class Inference:
  """Posterior draws of every group (generative order) and p(x | z) at them."""

  groups: tuple[LatentGroup, ...]
  p_x: Any  # a pixel distribution: log_prob(x) [B], mean, sample(keys_B)

  def log_weight(self, x: jax.Array, observed: jax.Array | None = None) -> jax.Array:
    """log p(x, z) - log q(z | x) = log p(x|z) + sum_g [log p(z_g|z_<g) - log q(z_g|.)], [B].

    With `observed` ([B, H, W, 1]), log p(x_o|z) over the observed pixels replaces log p(x|z).
    """
    return observed_log_prob(self.p_x, x, observed) + sum(g.log_p - g.log_q for g in self.groups)


def observed_log_prob(p_x, x: jax.Array, observed: jax.Array | None) -> jax.Array:
  """log p(x|z) [B], or log p(x_o|z) over the `observed` pixels when it is given."""
  if observed is None:
    return p_x.log_prob(x)
  if "observed" not in inspect.signature(p_x.log_prob).parameters:
    raise UserError(f"{type(p_x).__name__} cannot score only the observed pixels, so it cannot be "
                    "trained on missing data; use a per-pixel likelihood (bernoulli, gaussian, dlm)")
  return p_x.log_prob(x, observed=observed)


@flax.struct.dataclass
class Generated:
  """Prior draws of every group (generative order) and p(x | z) at them."""

  zs: tuple[jax.Array, ...]
  p_x: Any


def group_temperature(temperature: float | jax.Array | Sequence, g: int) -> float | jax.Array:
  """Group g's temperature from a scalar or a per-group sequence."""
  if isinstance(temperature, (tuple, list)):
    return temperature[g]
  return temperature


def scale_noise(dist, z: jax.Array, temperature) -> jax.Array:
  """z drawn at `temperature`: mean + T (z - mean), i.e. the standard deviation scaled by T."""
  if isinstance(temperature, (int, float)) and temperature == 1.0:
    return z
  return dist.mean + temperature * (z - dist.mean)


def one_hot(y: jax.Array | None, num_classes: int) -> jax.Array | None:
  if y is None or num_classes <= 0:
    return None
  return jax.nn.one_hot(y, num_classes, dtype=jnp.float32)


class LatentModel(nn.Module):
  """Base class; see the module doc. Subclasses set `likelihood` and the methods."""

  has_encoder = True  # False (a GAN): no encode/infer, so no reconstructions or likelihood evaluators

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict,
                  image_shape: tuple[int, int, int]) -> "LatentModel":
    raise NotImplementedError

  def __call__(self, x_BHWC: jax.Array, keys_B: jax.Array, y: jax.Array | None = None) -> Inference:
    """Inference at one draw; used by `init` to create every parameter."""
    return self.infer(self.encode(x_BHWC, y), keys_B, y)
