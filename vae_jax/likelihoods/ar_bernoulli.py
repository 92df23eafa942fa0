"""Locally autoregressive Bernoulli pixels: each binary pixel conditioned on z and on the pixels before it.

In raster order (row by row, left to right), p(x | z) = prod_i Bern(x_i; sigmoid(l_i)) with

  h_i = act(W_x n_i(x) + W_f f_i(z) + b)           n_i(x): the pixels of pixel i's causal window
  h_i <- act(W_d h_i + b_d)                        for each of `depth - 1` more layers
  l_i = w_o . h_i + b_o + f_i0(z)

n_i(x) holds the k//2 rows above pixel i (k columns centred on it) and the k//2 pixels to its
left, zero outside the image: the masked 'A' convolution of PixelCNN (van den Oord et al. 2016)
followed by 1x1 layers. f_i(z) are the decoder's `features` maps at pixel i. As in PixelVAE
(Gulrajani et al. 2017) and the VLAE (Chen et al. 2017), a small window leaves the global
structure (which digit, its shape) to z and lets the likelihood model what a factorised one
cannot: local stroke continuity. w_o starts at zero, so training starts from the factorised
Bernoulli VAE with logits f_i0(z).

Each conditional is a normalised Bernoulli, so log_prob is an exact log-likelihood and IS-NLL
needs nothing new. log_prob computes every conditional in one parallel pass (teacher forcing).
`sample` and `mean` are sequential, H*W steps that each compute one pixel's conditional; `mean`
feeds back each pixel's probability instead of a draw (a deterministic picture; E[x] has no
closed form under an autoregressive model).

Input transform as `bernoulli`: dynamic binarisation with `data.binarize`. Grayscale only.
"""

from __future__ import annotations

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import example_rng
from vae_jax.distributions import Bernoulli
from vae_jax.errors import UserError
from vae_jax.likelihoods.bernoulli import BernoulliLikelihood


def causal_offsets(radius: int) -> list[tuple[int, int]]:
  """(dy, dx) of a pixel's causal window: `radius` full rows above, then `radius` pixels to the left."""
  above = [(dy, dx) for dy in range(-radius, 0) for dx in range(-radius, radius + 1)]
  return above + [(0, dx) for dx in range(-radius, 0)]


def neighbours(x_BHW: jax.Array, radius: int) -> jax.Array:
  """[B, H, W] -> [B, H, W, N]: each pixel's causal window (`causal_offsets` order), zero outside."""
  height, width = x_BHW.shape[1:]
  padded = jnp.pad(x_BHW, ((0, 0), (radius, 0), (radius, radius)))
  return jnp.stack([padded[:, radius + dy:radius + dy + height, radius + dx:radius + dx + width]
                    for dy, dx in causal_offsets(radius)], axis=-1)


def _conditional_logits(net: dict, nbr_N: jax.Array, feat_F: jax.Array) -> jax.Array:
  """l = w_o . h + b_o + f_0 for windows [..., N] and features [..., F] -> [...]."""
  h = jax.nn.relu(nbr_N @ net["w_x"] + feat_F @ net["w_f"] + net["b"])
  for w, b in net["layers"]:
    h = jax.nn.relu(h @ w + b)
  return h @ net["w_o"] + net["b_o"] + feat_F[..., 0]


@flax.struct.dataclass
class LocalARBernoulli:
  """p(x | z) of the module doc for decoder features [B, H, W, F]; images are [B, H, W, 1]."""

  feat_BHWF: jax.Array
  net: dict
  radius: int = flax.struct.field(pytree_node=False)

  def logits(self, x_BHW1: jax.Array) -> jax.Array:
    """Every pixel's conditional logit given the pixels before it in x: [B, H, W, 1]."""
    nbr = neighbours(x_BHW1[..., 0].astype(self.feat_BHWF.dtype), self.radius)
    # As [B*H*W, N] matrices: XLA:CPU ran the 4-D form of these small matmuls 2-4x slower.
    logits = _conditional_logits(self.net, nbr.reshape(-1, nbr.shape[-1]),
                                 self.feat_BHWF.reshape(-1, self.feat_BHWF.shape[-1]))
    return logits.reshape(x_BHW1.shape)

  def log_prob(self, x: jax.Array) -> jax.Array:
    """log p(x|z) = sum_i [x_i l_i - softplus(l_i)], summed over pixels: [B]."""
    return Bernoulli(self.logits(x)).log_prob(x)

  def _decode_sequentially(self, u_BHW: jax.Array | None) -> jax.Array:
    """Raster-order decoding: draws x_i = [u_i < p_i] given u, else feeds back p_i."""
    b, height, width, _ = self.feat_BHWF.shape
    r = self.radius
    num = len(causal_offsets(r))

    def step(p, canvas):
      i, j = p // width, p % width
      window = jax.lax.dynamic_slice(canvas, (0, i, j), (b, r + 1, 2 * r + 1)).reshape(b, -1)[:, :num]
      feat = jax.lax.dynamic_slice(self.feat_BHWF, (0, i, j, 0), (b, 1, 1, self.feat_BHWF.shape[-1]))
      prob = jax.nn.sigmoid(_conditional_logits(self.net, window, feat.reshape(b, -1)))
      if u_BHW is not None:
        u = jax.lax.dynamic_slice(u_BHW, (0, i, j), (b, 1, 1)).reshape(b)
        prob = (u < prob).astype(canvas.dtype)
      return jax.lax.dynamic_update_slice(canvas, prob[:, None, None], (0, i + r, j + r))

    canvas = jnp.zeros((b, height + r, width + 2 * r), self.feat_BHWF.dtype)
    canvas = jax.lax.fori_loop(0, height * width, step, canvas)
    return canvas[:, r:, r:r + width][..., None]

  @property
  def mean(self) -> jax.Array:
    """The picture decoded by feeding back probabilities, in [0, 1]: [B, H, W, 1]."""
    return self._decode_sequentially(None)

  def sample(self, rng: jax.Array) -> jax.Array:
    """x ~ p(x|z), one key per example: [B, H, W, 1] in {0, 1}."""
    u = example_rng.uniform(rng, self.feat_BHWF.shape[1:3])
    return self._decode_sequentially(u.astype(self.feat_BHWF.dtype))


class ARBernoulliLikelihood(BernoulliLikelihood):
  """The module doc's likelihood; `features` decoder maps per pixel, a `kernel` x `kernel` causal window."""

  features: int = 4
  kernel: int = 7
  hidden: int = 32
  depth: int = 1

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "ARBernoulliLikelihood":
    m = config.model
    for key in ("ar_features", "ar_hidden", "ar_depth"):
      if m[key] < 1:
        raise UserError(f"model.{key} must be >= 1, got {m[key]}")
    if m.ar_kernel < 3 or m.ar_kernel % 2 == 0:
      raise UserError(f"model.ar_kernel must be odd and >= 3, got {m.ar_kernel}")
    return cls(binarize=bool(config.data.binarize), features=int(m.ar_features), kernel=int(m.ar_kernel),
               hidden=int(m.ar_hidden), depth=int(m.ar_depth))

  def out_channels(self, channels: int) -> int:
    if channels != 1:
      raise UserError(f"likelihood 'ar_bernoulli' models grayscale images; data.channels is {channels}")
    return self.features

  @nn.compact
  def __call__(self, feat_BHWF: jax.Array) -> LocalARBernoulli:
    radius = self.kernel // 2
    num, hid = len(causal_offsets(radius)), self.hidden
    dense = nn.initializers.lecun_normal()
    net = {
        "w_x": self.param("w_x", dense, (num, hid)),
        "w_f": self.param("w_f", dense, (self.features, hid)),
        "b": self.param("b", nn.initializers.zeros, (hid,)),
        "layers": [(self.param(f"w_{d}", dense, (hid, hid)), self.param(f"b_{d}", nn.initializers.zeros, (hid,)))
                   for d in range(1, self.depth)],
        "w_o": self.param("w_o", nn.initializers.zeros, (hid,)),
        "b_o": self.param("b_o", nn.initializers.zeros, ()),
    }
    return LocalARBernoulli(feat_BHWF, net, radius)
