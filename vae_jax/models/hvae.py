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
projected to the next width and upsampled (nearest; the 1x1 projection commutes
with it, so it runs at the lower resolution); a final conv gives the
likelihood's maps. Each group is a [B, r, r, z_channels] map; groups are in
generative order (0 = the first block at the lowest resolution).

Widths per resolution (`model.widths`, lowest resolution last like
`resolutions`), `model.z_channels`, `model.enc_blocks_per_res`. The last conv
of every residual branch starts at zero, so each block starts as the identity
and q = p = N(0, I) at initialisation (VDVAE scales these instead).

`encode` does all the work that depends on the image alone, once per image
however many draws `infer` makes of it (importance sampling makes thousands):
the bottom-up pass, the encoder's share of each posterior net's first layer,
and group 0's prior and posterior (its state is the learned start).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import flax.struct
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


class SplitPointwise(nn.Module):
  """A 1x1 conv of the concatenation [a, b]: [a, b] K + bias = a K_a + (b K_b + bias).

  Parameters are nn.Conv's (kernel [1, 1, Ca + Cb, O], bias [O]), so the module can stand where a
  `Conv(O, (1, 1))` of the concatenation stood. `of_b` is the part a caller can compute once and
  reuse for many values of a.
  """

  in_features: int  # Ca + Cb
  features: int

  def setup(self):
    self.kernel = self.param("kernel", nn.initializers.lecun_normal(),
                             (1, 1, self.in_features, self.features))
    self.bias = self.param("bias", nn.initializers.zeros, (self.features,))

  def of_a(self, a: jax.Array) -> jax.Array:
    return jnp.einsum("...c,co->...o", a, self.kernel[0, 0, :a.shape[-1]])

  def of_b(self, b: jax.Array) -> jax.Array:
    return jnp.einsum("...c,co->...o", b, self.kernel[0, 0, self.in_features - b.shape[-1]:]) + self.bias


class PosteriorNet(nn.Module):
  """ResBlock(2 * width, out) of [h, enc], with the encoder's share of its first layer split off.

  That layer is conv1x1(gelu([h, enc])) = gelu(h) K_h + (gelu(enc) K_e + b): `condition(enc)`
  is the bracket, which depends on the image alone, so importance sampling computes it once per
  image rather than once per draw; `__call__(h, condition)` is the rest. The parameters are
  ResBlock(2 * width, out)'s, names and shapes (Conv_0 ... Conv_3), so checkpoints carry over.
  """

  width: int  # of h and of enc
  out: int

  def setup(self):
    mid = max(2 * self.width // 4, 8)
    self.first = SplitPointwise(2 * self.width, mid, name="Conv_0")
    self.conv1 = Conv(mid, (3, 3), padding="SAME", name="Conv_1")
    self.conv2 = Conv(mid, (3, 3), padding="SAME", name="Conv_2")
    self.last = Conv(self.out, (1, 1), kernel_init=nn.initializers.zeros, name="Conv_3")

  def condition(self, enc: jax.Array) -> jax.Array:
    return self.first.of_b(nn.gelu(enc))

  def __call__(self, h: jax.Array, condition: jax.Array) -> jax.Array:
    y = self.first.of_a(nn.gelu(h)) + condition
    y = self.conv2(nn.gelu(self.conv1(nn.gelu(y))))
    return self.last(nn.gelu(y))


class TopDownBlock(nn.Module):
  """One latent group: prior and posterior from the state, a draw, and the state update."""

  width: int
  z_channels: int

  def setup(self):
    self.prior = ResBlock(self.width, out=2 * self.z_channels + self.width, zero_last=True)
    self.posterior = PosteriorNet(self.width, out=2 * self.z_channels)
    self.z_proj = Conv(self.width, (1, 1), kernel_init=nn.initializers.zeros)
    self.res = ResBlock(self.width)

  def _prior(self, h):
    out = self.prior(h)
    z = self.z_channels
    return DiagGaussian(out[..., :z], out[..., z:2 * z]), out[..., 2 * z:]

  def condition(self, enc):
    """The posterior's per-image input from the encoder activation at this resolution."""
    return self.posterior.condition(enc)

  def dists(self, h, condition) -> tuple[DiagGaussian, jax.Array, DiagGaussian]:
    """(p(z_g | z_<g), the prior net's features, q(z_g | x, z_<g)) at the state h."""
    p, feat = self._prior(h)
    q_out = self.posterior(h, condition)
    return p, feat, DiagGaussian(q_out[..., :self.z_channels], q_out[..., self.z_channels:])

  def infer(self, h, dists, keys_B, stream, temperature):
    p, feat, q = dists
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


@flax.struct.dataclass
class Context:
  """What `HVAE.encode` computes once per image for every draw of `infer`."""

  conditions: tuple[jax.Array, ...]  # per group, the encoder's share of its posterior net
  first: tuple[DiagGaussian, jax.Array, DiagGaussian]  # group 0's `dists`: its state is not drawn


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

  def encode(self, x_BHWC: jax.Array, y=None) -> Context:
    """Everything inference computes before the first draw: each group's posterior condition
    (from the encoder activation at its resolution) and group 0's prior and posterior."""
    acts = self._bottom_up(x_BHWC)
    blocks = [(r, block) for r in reversed(range(len(self.resolutions))) for block in self.dec_blocks[r]]
    conditions = tuple(block.condition(acts[r]) for r, block in blocks)
    first = blocks[0][1].dists(self._first_state(x_BHWC.shape[0], y), conditions[0])
    return Context(conditions=conditions, first=first)

  def _bottom_up(self, x_BHWC: jax.Array) -> tuple[jax.Array, ...]:
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

  def _first_state(self, batch: int, y) -> jax.Array:
    """The state group 0 reads: the start, carried up to the lowest resolution that has groups."""
    h = self._start(batch, y)
    for r in reversed(range(len(self.resolutions))):
      if r < len(self.resolutions) - 1:
        h = _upsample(self.dec_proj[r](h))
      if self.blocks_per_res[r]:
        return h
    raise AssertionError("from_config ensures at least one group")

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
        h = _upsample(self.dec_proj[r](h))
      for block in self.dec_blocks[r]:
        h = step(block, h, g, r)
        g += 1
    return h

  def infer(self, context: Context, keys_B, y=None, sample=0, temperature=1.0) -> Inference:
    groups = []

    def step(block, h, g, r):
      dists = context.first if g == 0 else block.dists(h, context.conditions[g])
      h, group = block.infer(h, dists, keys_B, example_rng.latent_stream(sample, g),
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
