"""Burda et al.'s (2016) MLP with L stochastic layers, bottom-up inference.

Inference (bottom-up, each layer an MLP of `layers_per_latent` tanh layers):

  q(z_1 | x), q(z_2 | z_1), ..., q(z_L | z_{L-1})

Generation mirrors it: p(z_L) = N(0, I), p(z_l | z_{l+1}) (learned Gaussian
MLPs), p(x | z_1) through the likelihood. Burda et al.'s 2-layer model is
latent_dims = (100, 50), hidden = (200, 100), 2 tanh layers each:
784-200-200-100 -> 100-100-50 and back.

Groups in generative order: group 0 is z_L, group L-1 is z_1. Only the top
group has a valid closed-form KL: z_l (l < L) is drawn before the z_{l+1} its
prior conditions on, so its KL term is the one-sample log q - log p.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import example_rng
from vae_jax.distributions import DiagGaussian, standard_normal_like
from vae_jax.errors import UserError
from vae_jax.likelihoods import Likelihood, make_likelihood
from vae_jax.models.base import (Generated, Inference, LatentGroup, LatentModel,
                                 group_temperature, one_hot, scale_noise)

ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu, "swish": nn.swish}


class GaussianMLP(nn.Module):
  """[Dense -> activation] * depth -> Dense(2Z): a diagonal Gaussian's (mean, logvar)."""

  widths: Sequence[int]
  latent_dim: int
  activation: str = "tanh"

  @nn.compact
  def __call__(self, h: jax.Array) -> DiagGaussian:
    for w in self.widths:
      h = ACTIVATIONS[self.activation](nn.Dense(w)(h))
    mean, logvar = jnp.split(nn.Dense(2 * self.latent_dim)(h), 2, axis=-1)
    return DiagGaussian(mean, logvar)


class PixelMLP(nn.Module):
  """[Dense -> activation] * depth -> Dense(H*W*P): the likelihood's parameter maps."""

  widths: Sequence[int]
  out_shape: tuple[int, int, int]
  activation: str = "tanh"

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    for w in self.widths:
      h = ACTIVATIONS[self.activation](nn.Dense(w)(h))
    height, width, p = self.out_shape
    return nn.Dense(height * width * p)(h).reshape(h.shape[0], height, width, p)


class Ladder(LatentModel):
  likelihood: Likelihood
  image_shape: tuple[int, int, int]
  latent_dims: Sequence[int] = (100, 50)  # z_1 (bottom) ... z_L (top)
  hidden: Sequence[int] = (200, 100)  # width of stochastic layer l's deterministic layers
  layers_per_latent: int = 2
  activation: str = "tanh"
  num_classes: int = 0

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, image_shape) -> "Ladder":
    m = config.model
    dims, hidden = tuple(m.latent_dims), tuple(m.hidden)
    if not dims or min(dims) < 1:
      raise UserError(f"model.latent_dims must be positive sizes, bottom to top, got {dims}")
    if len(hidden) != len(dims):
      raise UserError(f"the ladder needs one hidden width per stochastic layer: model.hidden={hidden} "
                      f"but model.latent_dims={dims}")
    if m.activation not in ACTIVATIONS:
      raise UserError(f"unknown model.activation {m.activation!r}; valid: {', '.join(sorted(ACTIVATIONS))}")
    return cls(likelihood=make_likelihood(config), image_shape=tuple(image_shape), latent_dims=dims,
               hidden=hidden, layers_per_latent=int(m.layers_per_latent), activation=m.activation,
               num_classes=int(m.num_classes))

  def setup(self):
    depth, act = self.layers_per_latent, self.activation
    num = len(self.latent_dims)
    self.q_nets = [GaussianMLP((self.hidden[l],) * depth, self.latent_dims[l], act) for l in range(num)]
    self.p_nets = [GaussianMLP((self.hidden[l + 1],) * depth, self.latent_dims[l], act)
                   for l in range(num - 1)]
    out_shape = (*self.image_shape[:2], self.likelihood.out_channels(self.image_shape[-1]))
    self.x_net = PixelMLP((self.hidden[0],) * depth, out_shape, act)

  def _with_label(self, h: jax.Array, y) -> jax.Array:
    y_BK = one_hot(y, self.num_classes)
    return h if y_BK is None else jnp.concatenate([h, y_BK], axis=-1)

  def encode(self, x_BHWC: jax.Array, y=None) -> DiagGaussian:
    """q(z_1 | x): the only part of inference that does not depend on a draw."""
    return self.q_nets[0](self._with_label(x_BHWC.reshape(x_BHWC.shape[0], -1), y))

  def decode(self, zs: tuple[jax.Array, ...], y=None):
    return self.likelihood(self.x_net(self._with_label(zs[-1], y)))

  def infer(self, q_1: DiagGaussian, keys_B: jax.Array, y=None, sample=0, temperature=1.0) -> Inference:
    num = len(self.latent_dims)
    qs, zs = [], []
    q = q_1
    for l in range(num):  # bottom-up draws; generative index of layer l is num - 1 - l
      if l > 0:
        q = self.q_nets[l](self._with_label(zs[-1], y))
      g = num - 1 - l
      z = scale_noise(q, q.sample(keys_B, example_rng.latent_stream(sample, g)),
                      group_temperature(temperature, g))
      qs.append(q)
      zs.append(z)
    groups = []
    for l in reversed(range(num)):  # generative order: top first
      q, z = qs[l], zs[l]
      if l == num - 1:
        p = standard_normal_like(z)
        groups.append(LatentGroup(z=z, log_q=q.log_prob(z), log_p=p.log_prob(z), kl=q.kl_standard_normal()))
      else:
        p = self.p_nets[l](self._with_label(zs[l + 1], y))
        groups.append(LatentGroup(z=z, log_q=q.log_prob(z), log_p=p.log_prob(z)))
    return Inference(groups=tuple(groups), p_x=self.decode(tuple(reversed(zs)), y))

  def generate(self, keys_B: jax.Array, y=None, temperature=1.0) -> Generated:
    num = len(self.latent_dims)
    zs = []
    for g in range(num):  # top first
      l = num - 1 - g
      if g == 0:
        p = standard_normal_like(jnp.zeros((keys_B.shape[0], self.latent_dims[l])))
      else:
        p = self.p_nets[l](self._with_label(zs[-1], y))
      z = scale_noise(p, p.sample(keys_B, example_rng.latent_stream(0, g)), group_temperature(temperature, g))
      zs.append(z)
    return Generated(zs=tuple(zs), p_x=self.decode(tuple(zs), y))
