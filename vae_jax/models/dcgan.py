"""DCGAN (Radford et al. 2016): a generator and a discriminator, trained by the `gan` loss.

The generator maps z ~ N(0, I) (`latent_dim`) through a dense layer to a
4x4 (or 7x7 for 28-pixel images) map of `gan_width * 2^(n-1)` channels, then
n stride-2 transposed convolutions (kernel 4), halving the channels, to the
image; a sigmoid gives pixels in [0, 1]. The discriminator mirrors it: n
stride-2 convolutions (kernel 4, LeakyReLU 0.2), doubling the channels, and a
dense logit.

Normalisation (`gan_norm`): DCGAN's batch normalisation makes each image
depend on the rest of its batch, so a sample would change with the batch size
and the device split; here the generator uses layer normalisation over each
image's channels and positions ("layer", the default) or none ("none"), and
the discriminator none. Its stabilisers are in the loss (`gan_loss.py`: the
R1 penalty).

Within the model contract (`models/base.py`): `generate` draws z per example
from its key and returns p(x|z) as a point mass at G(z) (`mean` and `sample`
are the image; there is no density, so ELBO and IS-NLL evaluators do not
apply); `discriminate` gives D's logits; there is no encoder
(`has_encoder = False`: no reconstructions or interpolations).
"""

from __future__ import annotations

import math

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import example_rng
from vae_jax.distributions import standard_normal_like
from vae_jax.errors import UserError
from vae_jax.likelihoods.base import Likelihood
from vae_jax.models.base import Generated, LatentModel, group_temperature, scale_noise


@flax.struct.dataclass
class PointMass:
  """p(x|z) of a generator: all mass at one image. No density: `log_prob` is refused."""

  image: jax.Array

  @property
  def mean(self) -> jax.Array:
    return self.image

  def sample(self, keys_B: jax.Array) -> jax.Array:
    del keys_B
    return self.image

  def log_prob(self, x: jax.Array) -> jax.Array:
    raise UserError("a GAN generator has no likelihood: ELBO, IS-NLL and IWAE do not apply; "
                    "evaluate it with fid, kid, precision_recall or class_coverage")


class PlainImages(Likelihood):
  """The GAN's input transform: x = image / 255, no binarisation or noise (no density to score)."""

  def model_input(self, image_BHWC: jax.Array, keys_B: jax.Array) -> jax.Array:
    del keys_B
    return image_BHWC.astype(jnp.float32) / 255.0


def num_stages(image_size: int) -> tuple[int, int]:
  """(n, base): image_size = base * 2^n with base 4 or 7 (28 -> 7 x 2^2, 32 -> 4 x 2^3, 64 -> 4 x 2^4)."""
  for base in (4, 7):
    n = math.log2(image_size / base) if image_size >= base else -1
    if n >= 1 and n == int(n):
      return int(n), base
  raise UserError(f"dcgan needs data.image_size = 4 x 2^n or 7 x 2^n (e.g. 28, 32, 64), got {image_size}")


class Generator(nn.Module):
  image_shape: tuple[int, int, int]
  width: int
  norm: str = "layer"

  @nn.compact
  def __call__(self, z_BZ: jax.Array) -> jax.Array:
    n, base = num_stages(self.image_shape[0])
    channels = self.width * 2 ** (n - 1)
    h = nn.Dense(base * base * channels)(z_BZ).reshape(-1, base, base, channels)
    for i in range(n):
      h = nn.LayerNorm(reduction_axes=(1, 2, 3))(h) if self.norm == "layer" else h
      h = nn.relu(h)
      out = self.image_shape[-1] if i == n - 1 else channels // 2 ** (i + 1)
      h = nn.ConvTranspose(out, (4, 4), strides=(2, 2), padding="SAME")(h)
    return nn.sigmoid(h)


class Discriminator(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    n, _ = num_stages(x_BHWC.shape[1])
    h = x_BHWC * 2.0 - 1.0
    for i in range(n):
      h = nn.leaky_relu(nn.Conv(self.width * 2**i, (4, 4), strides=(2, 2), padding="SAME")(h), 0.2)
    return nn.Dense(1)(h.reshape(h.shape[0], -1))[:, 0]


class DCGAN(LatentModel):
  """generator(z) -> image; discriminator(image) -> logit. See the module doc."""

  generator: nn.Module
  discriminator: nn.Module
  likelihood: Likelihood
  latent_dim: int
  num_classes: int = 0
  has_encoder = False

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, image_shape) -> "DCGAN":
    m = config.model
    if m.get("num_classes", 0):
      raise UserError("dcgan is unconditional; set model.num_classes=0")
    if m.gan_norm not in ("layer", "none"):
      raise UserError(f"model.gan_norm must be layer or none, got {m.gan_norm!r}")
    num_stages(image_shape[0])
    return cls(generator=Generator(tuple(image_shape), m.gan_width, m.gan_norm),
               discriminator=Discriminator(m.gan_width), likelihood=PlainImages(),
               latent_dim=m.latent_dim)

  def __call__(self, x_BHWC: jax.Array, keys_B: jax.Array, y: jax.Array | None = None):
    """Creates both networks' parameters (for `init`)."""
    return self.discriminate(x_BHWC), self.generate(keys_B, y)

  def discriminate(self, x_BHWC: jax.Array) -> jax.Array:
    """D's logit per image [B]: log D / (1 - D), D the probability that x is real."""
    return self.discriminator(x_BHWC)

  def generate(self, keys_B: jax.Array, y: jax.Array | None = None, temperature=1.0) -> Generated:
    del y
    p_z = standard_normal_like(jnp.zeros((keys_B.shape[0], self.latent_dim), jnp.float32))
    z = scale_noise(p_z, p_z.sample(keys_B, example_rng.latent_stream(0, 0)),
                    group_temperature(temperature, 0))
    return Generated(zs=(z,), p_x=PointMass(self.generator(z)))

  def decode(self, zs, y: jax.Array | None = None):
    del y
    return PointMass(self.generator(zs[0]))

  def encode(self, x_BHWC, y=None):
    raise UserError("dcgan has no encoder: reconstructions, interpolations and likelihood "
                    "evaluators need a VAE")

  def infer(self, context, keys_B, y=None, sample=0, temperature=1.0):
    raise UserError("dcgan has no encoder: reconstructions, interpolations and likelihood "
                    "evaluators need a VAE")
