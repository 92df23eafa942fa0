"""The VAE with one latent group: q(z|x) = N(mean(x), diag exp(logvar(x))), p(z) = N(0, I).

With `num_classes` > 0 it is conditional (Kingma et al. 2014, M2's generative
form): the one-hot label y is appended to the encoder's input as constant
maps and to z at the decoder's input, and the prior is p(z | y) =
N(mu_y, diag exp(logvar_y)) with learned per-class parameters
(`model.class_prior="learned"`), or p(z) = N(0, I) for every class
(`"standard"`, M2's own choice): then z cannot mark the class by where it
lies, which is what lets a code move between classes (vae_jax/transfer.py).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import example_rng
from vae_jax import networks
from vae_jax.distributions import DiagGaussian, standard_normal_like
from vae_jax.errors import UserError
from vae_jax.likelihoods import Likelihood, make_likelihood
from vae_jax.models.base import (Generated, Inference, LatentGroup, LatentModel,
                                 group_temperature, one_hot, scale_noise)


class VAE(LatentModel):
  """encoder -> q(z|x); decoder -> the likelihood's parameter maps; one latent group."""

  encoder: nn.Module
  decoder: nn.Module
  likelihood: Likelihood
  latent_dim: int
  num_classes: int = 0
  class_prior: str = "learned"  # or "standard": p(z | y) = N(0, I)

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, image_shape) -> "VAE":
    m = config.model
    if m.latent_dim < 1:
      raise UserError(f"model.latent_dim must be >= 1, got {m.latent_dim}")
    class_prior = m.get("class_prior", "learned")
    if class_prior not in ("learned", "standard"):
      raise UserError(f"model.class_prior={class_prior!r} is not a prior; set --config.model.class_prior to "
                      "learned (per class) or standard (N(0, I))")
    likelihood = make_likelihood(config)
    return cls(
        encoder=networks.make_encoder(m),
        decoder=networks.make_decoder(m, image_shape,
                                      out_channels=likelihood.out_channels(image_shape[-1])),
        likelihood=likelihood, latent_dim=m.latent_dim, num_classes=int(m.num_classes),
        class_prior=class_prior)

  def _learned_prior(self) -> bool:
    return self.num_classes > 0 and self.class_prior == "learned"

  def setup(self):
    if self._learned_prior():  # p(z | y): a learned mean and log-variance per class
      self.prior_by_class = self.param("prior_by_class", nn.initializers.zeros,
                                       (self.num_classes, 2 * self.latent_dim))

  def _prior(self, z_BZ: jax.Array, y: jax.Array | None) -> DiagGaussian:
    y_BK = one_hot(y, self.num_classes)
    if y_BK is None or not self._learned_prior():
      return standard_normal_like(z_BZ)
    mean, logvar = jnp.split(y_BK @ self.prior_by_class, 2, axis=-1)
    return DiagGaussian(mean, logvar)

  def encode(self, x_BHWC: jax.Array, y: jax.Array | None = None) -> DiagGaussian:
    y_BK = one_hot(y, self.num_classes)
    if y_BK is not None:
      maps = jnp.broadcast_to(y_BK[:, None, None, :], (*x_BHWC.shape[:3], self.num_classes))
      x_BHWC = jnp.concatenate([x_BHWC, maps], axis=-1)
    mean, logvar = self.encoder(x_BHWC)
    return DiagGaussian(mean, logvar)

  def decode(self, zs: tuple[jax.Array, ...], y: jax.Array | None = None):
    (z_BZ,) = zs
    y_BK = one_hot(y, self.num_classes)
    if y_BK is not None:
      z_BZ = jnp.concatenate([z_BZ, y_BK], axis=-1)
    return self.likelihood(self.decoder(z_BZ))

  def infer(self, q_z: DiagGaussian, keys_B: jax.Array, y: jax.Array | None = None,
            sample: int | jax.Array = 0, temperature=1.0) -> Inference:
    z = scale_noise(q_z, q_z.sample(keys_B, example_rng.latent_stream(sample, 0)),
                    group_temperature(temperature, 0))
    p_z = self._prior(z, y)
    kl = q_z.kl_standard_normal() if y is None or not self._learned_prior() else q_z.kl(p_z)
    group = LatentGroup(z=z, log_q=q_z.log_prob(z), log_p=p_z.log_prob(z), kl=kl)
    return Inference(groups=(group,), p_x=self.decode((z,), y))

  def generate(self, keys_B: jax.Array, y: jax.Array | None = None, temperature=1.0) -> Generated:
    zero = jnp.zeros((keys_B.shape[0], self.latent_dim), jnp.float32)
    p_z = self._prior(zero, y)
    z = scale_noise(p_z, p_z.sample(keys_B, example_rng.latent_stream(0, 0)),
                    group_temperature(temperature, 0))
    return Generated(zs=(z,), p_x=self.decode((z,), y))
