"""Encoder and decoder networks (Flax linen), chosen by name in the config.

Encoders map images x_BHWC in [0, 1] to the posterior's (mean_BZ, logvar_BZ).
Decoders map z_BZ to an unconstrained parameter map [B, H, W, out_channels]
that the model turns into a likelihood. Networks know nothing of losses.

Layer choices for speed: XLA:CPU computes transposed-convolution gradients
slowly, so the conv decoder upsamples with a plain convolution followed by a
depth-to-space shuffle ("pixel shuffle", Shi et al. 2016) by default, which
has the same receptive field as a stride-2 transposed convolution and is fast
on every backend. `upsample="transpose"` and `"resize"` are kept for comparison.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax.errors import UserError
from vae_jax.registry import Registry

ENCODERS: Registry[type[nn.Module]] = Registry("encoder")
DECODERS: Registry[type[nn.Module]] = Registry("decoder")
UPSAMPLE_MODES = ("pixel_shuffle", "transpose", "resize")


def depth_to_space(x_BHWC: jax.Array, factor: int) -> jax.Array:
  """[B, H, W, C*f*f] -> [B, H*f, W*f, C] (the inverse of space-to-depth)."""
  b, h, w, c = x_BHWC.shape
  oc = c // (factor * factor)
  x = x_BHWC.reshape(b, h, w, factor, factor, oc)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * factor, w * factor, oc)


@ENCODERS.register("mlp")
class MLPEncoder(nn.Module):
  """Flatten -> [Dense -> ReLU]* -> Dense(2Z), split into mean and logvar."""

  latent_dim: int
  hidden: Sequence[int] = (500,)

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = x_BHWC.reshape(x_BHWC.shape[0], -1)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    out = nn.Dense(2 * self.latent_dim)(h)
    mean, logvar = jnp.split(out, 2, axis=-1)
    return mean, logvar


@DECODERS.register("mlp")
class MLPDecoder(nn.Module):
  """[Dense -> ReLU]* -> Dense(H*W*out_channels), reshaped to an image."""

  image_shape: tuple[int, int, int]
  out_channels: int
  hidden: Sequence[int] = (500,)

  @nn.compact
  def __call__(self, z_BZ: jax.Array) -> jax.Array:
    h = z_BZ
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    height, width_, _ = self.image_shape
    out = nn.Dense(height * width_ * self.out_channels)(h)
    return out.reshape(z_BZ.shape[0], height, width_, self.out_channels)


@ENCODERS.register("conv")
class ConvEncoder(nn.Module):
  """[Conv(stride 2) -> activation]* -> flatten -> Dense(2Z). Each conv halves H and W."""

  latent_dim: int
  channels: Sequence[int] = (32, 64)
  kernel: int = 4

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = x_BHWC
    for c in self.channels:
      h = nn.relu(nn.Conv(c, (self.kernel, self.kernel), strides=(2, 2), padding="SAME")(h))
    h = h.reshape(h.shape[0], -1)
    out = nn.Dense(2 * self.latent_dim)(h)
    mean, logvar = jnp.split(out, 2, axis=-1)
    return mean, logvar


@DECODERS.register("conv")
class ConvDecoder(nn.Module):
  """Dense -> [H/2^L, W/2^L, C_L] -> [upsample x2 -> ReLU]* -> Conv to out_channels.

  Mirrors ConvEncoder: `channels` are listed encoder-order and used reversed.
  The last upsampling block outputs the image resolution directly.
  """

  image_shape: tuple[int, int, int]
  out_channels: int
  channels: Sequence[int] = (32, 64)
  kernel: int = 4
  upsample: str = "pixel_shuffle"

  @nn.compact
  def __call__(self, z_BZ: jax.Array) -> jax.Array:
    height, width, _ = self.image_shape
    n = len(self.channels)
    h0, w0 = height // 2**n, width // 2**n
    rev = list(reversed(self.channels))
    h = nn.relu(nn.Dense(h0 * w0 * rev[0])(z_BZ)).reshape(-1, h0, w0, rev[0])
    outs = rev[1:] + [self.out_channels]
    k = (self.kernel, self.kernel)
    for i, c in enumerate(outs):
      if self.upsample == "pixel_shuffle":
        h = depth_to_space(nn.Conv(4 * c, k, padding="SAME")(h), 2)
      elif self.upsample == "transpose":
        h = nn.ConvTranspose(c, k, strides=(2, 2), padding="SAME")(h)
      elif self.upsample == "resize":
        b, hh, ww, cc = h.shape
        h = jax.image.resize(h, (b, 2 * hh, 2 * ww, cc), "nearest")
        h = nn.Conv(c, k, padding="SAME")(h)
      else:
        raise ValueError(f"unknown upsample {self.upsample!r}")
      if i < len(outs) - 1:
        h = nn.relu(h)
    return h


def _build(cls: type[nn.Module], available: dict) -> nn.Module:
  """Instantiates a network from the config values its dataclass fields name."""
  fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  return cls(**{k: v for k, v in available.items() if k in fields})


def _shared_fields(model_config: ml_collections.ConfigDict) -> dict:
  return dict(latent_dim=model_config.latent_dim, hidden=tuple(model_config.hidden),
              channels=tuple(model_config.channels), kernel=model_config.kernel,
              upsample=model_config.upsample)


def make_encoder(model_config: ml_collections.ConfigDict) -> nn.Module:
  """The encoder named by `model.encoder` (a registered name or 'module:Class')."""
  return _build(ENCODERS.get(model_config.encoder), _shared_fields(model_config))


def make_decoder(model_config: ml_collections.ConfigDict,
                 image_shape: tuple[int, int, int], out_channels: int) -> nn.Module:
  """The decoder named by `model.decoder`, producing `out_channels` maps per pixel."""
  cls = DECODERS.get(model_config.decoder)
  n = len(model_config.channels)
  if cls is ConvDecoder and (image_shape[0] % 2**n or image_shape[1] % 2**n):
    raise UserError(
        f"a conv decoder with {n} upsampling layers needs an image size divisible by {2**n}, "
        f"got {image_shape[0]}x{image_shape[1]}; change --config.data.image_size or "
        "--config.model.channels")
  if cls is ConvDecoder and model_config.upsample not in UPSAMPLE_MODES:
    raise UserError(f"unknown model.upsample {model_config.upsample!r}; "
                    f"valid: {', '.join(UPSAMPLE_MODES)}")
  return _build(cls, dict(_shared_fields(model_config), image_shape=tuple(image_shape),
                          out_channels=out_channels))
