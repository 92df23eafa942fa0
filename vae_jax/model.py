"""The VAE: an encoder giving q(z|x), a decoder giving p(x|z), and a N(0, I) prior.

The model returns distributions (see `distributions.py`) and never computes a
loss. The pure functions `init`, `encode`, `decode` and `prior_sample` wrap
`model.apply` on an explicit params pytree.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import networks
from vae_jax.distributions import Bernoulli, DiagGaussian, Gaussian
from vae_jax.errors import UserError

LIKELIHOODS = ("bernoulli", "gaussian")
Likelihood = Bernoulli | Gaussian


class VAE(nn.Module):
  """q(z|x) = N(mean(x), diag exp(logvar(x))); p(x|z) Bernoulli or Gaussian per pixel.

  Attributes:
    encoder, decoder: networks from `networks.py`.
    likelihood: "bernoulli" (decoder gives logits) or "gaussian" (decoder gives
      the mean; the standard deviation is `gaussian_std`, or, with
      `learn_std`, one learned value per channel shared by all pixels, as in
      the sigma-VAE of Rybkin et al. 2021, initialised at `gaussian_std`).
  """

  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int
  likelihood: str = "bernoulli"
  gaussian_std: float = 0.1
  learn_std: bool = False

  def encode(self, x_BHWC: jax.Array) -> DiagGaussian:
    mean, logvar = self.encoder(x_BHWC)
    return DiagGaussian(mean, logvar)

  @nn.compact
  def decode(self, z_BZ: jax.Array) -> Likelihood:
    out_BHWC = self.decoder(z_BZ)
    if self.likelihood == "bernoulli":
      return Bernoulli(out_BHWC)
    log_std = jnp.full((out_BHWC.shape[-1],), math.log(self.gaussian_std), out_BHWC.dtype)
    if self.learn_std:
      log_std = self.param("log_std", lambda _, shape: log_std, log_std.shape)
    return Gaussian(out_BHWC, log_std)

  def __call__(self, x_BHWC: jax.Array, rng: jax.Array) -> tuple[DiagGaussian, Likelihood]:
    """q(z|x) and p(x|z) at one reparameterised draw z ~ q(z|x); used by `init`."""
    posterior = self.encode(x_BHWC)
    return posterior, self.decode(posterior.sample(rng))


def make_model(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> VAE:
  """Builds the VAE that `config.model` describes, for images of `image_shape` (H, W, C)."""
  m = config.model
  if m.likelihood not in LIKELIHOODS:
    raise UserError(f"unknown model.likelihood {m.likelihood!r}; valid: {', '.join(LIKELIHOODS)}")
  if m.latent_dim < 1:
    raise UserError(f"model.latent_dim must be >= 1, got {m.latent_dim}")
  if m.likelihood == "gaussian" and not m.gaussian_std > 0:
    raise UserError(f"model.gaussian_std must be > 0, got {m.gaussian_std}")
  return VAE(
      encoder=networks.make_encoder(m),
      decoder=networks.make_decoder(m, image_shape, out_channels=image_shape[-1]),
      latent_dim=m.latent_dim,
      likelihood=m.likelihood,
      gaussian_std=float(m.gaussian_std),
      learn_std=bool(m.learn_std),
  )


def init(model: VAE, rng: jax.Array, image_shape: tuple[int, int, int]):
  """Initial params for `model`, from one key."""
  params_rng, sample_rng = jax.random.split(rng)
  x = jnp.zeros((1, *image_shape), jnp.float32)
  return model.init(params_rng, x, jax.random.split(sample_rng, 1))["params"]


def encode(params, x_BHWC: jax.Array, *, model: VAE) -> DiagGaussian:
  return model.apply({"params": params}, x_BHWC, method=VAE.encode)


def decode(params, z_BZ: jax.Array, *, model: VAE) -> Likelihood:
  return model.apply({"params": params}, z_BZ, method=VAE.decode)


def prior_sample(params, rng: jax.Array, num: int, *, model: VAE,
                 temperature: float = 1.0) -> Likelihood:
  """p(x|z) for z ~ N(0, temperature^2 I): temperature < 1 trades diversity for fidelity."""
  z_BZ = temperature * jax.random.normal(rng, (num, model.latent_dim))
  return decode(params, z_BZ, model=model)
