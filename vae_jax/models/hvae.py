"""A VDVAE-style hierarchy of convolutional latent groups (Child 2021; Vahdat & Kautz 2020).

Bottom-up, a residual encoder keeps its activations at each resolution
(`model.resolutions`, each half the one before, e.g. 28, 14, 7). Top-down, a
decoder starts from a learned constant at the lowest resolution and runs
`model.blocks_per_res[r]` blocks at resolution r (lowest first). Each block:

  prior     p(z_g | z_<g)      = N(mu_p, s_p) from a conv of the state h
  posterior q(z_g | x, z_<g)   = N(mu_q, s_q) from a conv of [h, encoder activation at r]
  then      h <- h + f(h) + proj(z_g);  h <- h + res(h)

so both distributions condition on the same draws above, and the KL of every
group is in closed form: KL(q || p) at the state h. Between resolutions h is
upsampled (nearest) and projected to the next width; a final conv gives the
likelihood's maps. Each group is a [B, r, r, z_channels] map; groups are in
generative order (0 = the first block at the lowest resolution).

Widths per resolution (`model.widths`, lowest resolution last like
`resolutions`), `model.z_channels`, `model.enc_blocks_per_res`. The last conv
of every residual branch starts at zero, so each block starts as the identity
and q = p = N(0, I) at initialisation (VDVAE scales these instead).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import example_rng
from vae_jax.conv import Conv
from vae_jax.distributions import DiagGaussian
from vae_jax.errors import UserError
from vae_jax.likelihoods import Likelihood, make_likelihood
from vae_jax.models.base import (Generated, Inference, LatentGroup, LatentModel, group_temperature,
                                 scale_noise)


class ResBlock(nn.Module):
  """h + conv1x1(gelu(conv3x3(gelu(conv3x3(gelu(conv1x1(gelu(h)))))))), bottleneck width/4."""

  width: int
  out: int | None = None
  zero_last: bool = True

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    mid = max(self.width // 4, 8)
    y = Conv(mid, (1, 1))(nn.gelu(h))
    y = Conv(mid, (3, 3), padding="SAME")(nn.gelu(y))
    y = Conv(mid, (3, 3), padding="SAME")(nn.gelu(y))
    init = nn.initializers.zeros if self.zero_last else nn.initializers.lecun_normal()
    y = Conv(self.out or self.width, (1, 1), kernel_init=init)(nn.gelu(y))
    return h + y if self.out is None else y


def _pool(h: jax.Array) -> jax.Array:
  return nn.avg_pool(h, (2, 2), strides=(2, 2))


def _upsample(h: jax.Array) -> jax.Array:
  return jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)


class TopDownBlock(nn.Module):
  """One latent group: prior and posterior from the state, a draw, and the state update."""

  width: int
  z_channels: int

  def setup(self):
    self.prior = ResBlock(self.width, out=2 * self.z_channels + self.width, zero_last=True)
    self.posterior = ResBlock(2 * self.width, out=2 * self.z_channels, zero_last=True)
    self.z_proj = Conv(self.width, (1, 1), kernel_init=nn.initializers.zeros)
    self.res = ResBlock(self.width)

  def _prior(self, h):
    out = self.prior(h)
    z = self.z_channels
    return DiagGaussian(out[..., :z], out[..., z:2 * z]), out[..., 2 * z:]

  def infer(self, h, enc, keys_B, stream, temperature):
    p, feat = self._prior(h)
    q_out = self.posterior(jnp.concatenate([h, enc], axis=-1))
    q = DiagGaussian(q_out[..., :self.z_channels], q_out[..., self.z_channels:])
    z = scale_noise(q, q.sample(keys_B, stream), temperature)
    group = LatentGroup(z=z, log_q=q.log_prob(z), log_p=p.log_prob(z), kl=q.kl(p))
    return self.res(h + feat + self.z_proj(z)), group

  def generate(self, h, keys_B, stream, temperature):
    p, feat = self._prior(h)
    z = scale_noise(p, p.sample(keys_B, stream), temperature)
    return self.res(h + feat + self.z_proj(z)), z

  def decode(self, h, z):
    _, feat = self._prior(h)
    return self.res(h + feat + self.z_proj(z))


class HVAE(LatentModel):
  likelihood: Likelihood
  image_shape: tuple[int, int, int]
  resolutions: Sequence[int] = (28, 14, 7)
  widths: Sequence[int] = (32, 32, 32)
  blocks_per_res: Sequence[int] = (2, 2, 2)  # top-down latent groups per resolution
  enc_blocks_per_res: Sequence[int] = (1, 1, 1)
  z_channels: int = 4
  num_classes: int = 0

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, image_shape) -> "HVAE":
    m = config.model
    res, widths = tuple(m.resolutions), tuple(m.widths)
    blocks, enc_blocks = tuple(m.blocks_per_res), tuple(m.enc_blocks_per_res)
    if not res or res[0] != image_shape[0] or any(b * 2 != a for a, b in zip(res, res[1:])):
      raise UserError(f"model.resolutions must start at the image size {image_shape[0]} and halve each "
                      f"time (e.g. {image_shape[0]}, {image_shape[0] // 2}, ...), got {res}")
    if not len(res) == len(widths) == len(blocks) == len(enc_blocks):
      raise UserError(f"model.widths, blocks_per_res and enc_blocks_per_res need one entry per resolution "
                      f"{res}; got {widths}, {blocks}, {enc_blocks}")
    if min(blocks) < 0 or sum(blocks) < 1 or min(enc_blocks) < 0 or min(widths) < 8 or m.z_channels < 1:
      raise UserError("model.blocks_per_res needs at least one latent group in all, widths >= 8 and "
                      "z_channels >= 1")
    return cls(likelihood=make_likelihood(config), image_shape=tuple(image_shape), resolutions=res,
               widths=widths, blocks_per_res=blocks, enc_blocks_per_res=enc_blocks,
               z_channels=int(m.z_channels), num_classes=int(m.num_classes))

  def setup(self):
    n = len(self.resolutions)
    self.stem = Conv(self.widths[0], (3, 3), padding="SAME")
    self.enc_blocks = [[ResBlock(self.widths[r]) for _ in range(self.enc_blocks_per_res[r])] for r in range(n)]
    self.enc_proj = [Conv(self.widths[r + 1], (1, 1)) for r in range(n - 1)]
    self.top = self.param("top", nn.initializers.zeros, (self.resolutions[-1], self.resolutions[-1],
                                                         self.widths[-1]))
    self.dec_blocks = [[TopDownBlock(self.widths[r], self.z_channels) for _ in range(self.blocks_per_res[r])]
                       for r in range(n)]
    self.dec_proj = [Conv(self.widths[r], (1, 1)) for r in range(n - 1)]
    self.out = Conv(self.likelihood.out_channels(self.image_shape[-1]), (3, 3), padding="SAME")
    if self.num_classes > 0:
      self.label_embed = nn.Embed(self.num_classes, self.widths[-1])

  def encode(self, x_BHWC: jax.Array, y=None) -> tuple[jax.Array, ...]:
    """Encoder activations at each resolution, highest first."""
    h = self.stem(x_BHWC)
    acts = []
    for r in range(len(self.resolutions)):
      for block in self.enc_blocks[r]:
        h = block(h)
      acts.append(h)
      if r + 1 < len(self.resolutions):
        h = self.enc_proj[r](_pool(h))
    return tuple(acts)

  def _start(self, batch: int, y) -> jax.Array:
    h = jnp.broadcast_to(self.top, (batch, *self.top.shape))
    if y is not None and self.num_classes > 0:
      h = h + self.label_embed(y)[:, None, None, :]
    return h

  def _walk(self, h, step):
    """Runs `step(block, h, g) -> h` over the top-down blocks, lowest resolution first."""
    g = 0
    for r in reversed(range(len(self.resolutions))):
      if r < len(self.resolutions) - 1:
        h = self.dec_proj[r](_upsample(h))
      for block in self.dec_blocks[r]:
        h = step(block, h, g, r)
        g += 1
    return h

  def infer(self, acts, keys_B, y=None, sample=0, temperature=1.0) -> Inference:
    groups = []

    def step(block, h, g, r):
      h, group = block.infer(h, acts[r], keys_B, example_rng.latent_stream(sample, g),
                             group_temperature(temperature, g))
      groups.append(group)
      return h
    h = self._walk(self._start(keys_B.shape[0], y), step)
    return Inference(groups=tuple(groups), p_x=self.likelihood(self.out(h)))

  def generate(self, keys_B, y=None, temperature=1.0) -> Generated:
    zs = []

    def step(block, h, g, r):
      h, z = block.generate(h, keys_B, example_rng.latent_stream(0, g), group_temperature(temperature, g))
      zs.append(z)
      return h
    h = self._walk(self._start(keys_B.shape[0], y), step)
    return Generated(zs=tuple(zs), p_x=self.likelihood(self.out(h)))

  def decode(self, zs, y=None):
    def step(block, h, g, r):
      return block.decode(h, zs[g])
    h = self._walk(self._start(zs[0].shape[0], y), step)
    return self.likelihood(self.out(h))
