"""Discretized logistic mixture pixels (PixelCNN++, Salimans et al. 2017; VDVAE, Child 2021).

A probability of the 8-bit data itself, for grayscale (C = 1) or RGB (C = 3)
images. Each pixel is a mixture of K components; in y = 2x - 1 in [-1, 1]
(the 256 values k/255 map to y_k = k/127.5 - 1, bin width 2/255) component k
gives channel c the mass of a logistic(m_c, s_c) on the bin around y:

  P_k(y_c) = CDF(y_c + 1/255) - CDF(y_c - 1/255)     for 0 < k < 255
  P_k(y_c) = CDF(-1 + 1/255)                          for k = 0   (all mass below)
  P_k(y_c) = 1 - CDF(1 - 1/255)                       for k = 255 (all mass above)

With RGB the channels of one component are autoregressive in the actual data
values: m_r = mu_r, m_g = mu_g + alpha y_r, m_b = mu_b + beta y_r + gamma y_g,
with (alpha, beta, gamma) = tanh(raw coefficients), per component. Then
log P(pixel) = logsumexp_k [log softmax(logits)_k + sum_c log P_k(y_c)].

Input transform: x = k / 255, no noise; `nats_to_bits_per_dim` is the base's.

Decoder output layout (P = out_channels(C) maps per pixel, blocks in order;
"[c, k]" means index c * K + k inside the block, channel-major):

  C = 1, P = 3K:   [0, K) logits | [K, 2K) means | [2K, 3K) log-scales
  C = 3, P = 10K:  [0, K) logits | [K, 4K) means[c, k] | [4K, 7K) log-scales[c, k]
                   | [7K, 10K) raw coefficients[j, k], j = 0: alpha (g <- r),
                   1: beta (b <- r), 2: gamma (b <- g)

Means and log-scales are in y space (VDVAE interleaves these per channel
instead; the layout here is this library's own).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import example_rng
from vae_jax.errors import UserError
from vae_jax.likelihoods.base import Likelihood

MIN_LOG_SCALE = -7.0  # as PixelCNN++: log-scales are clamped below here
_HALF_BIN = 1.0 / 255.0  # half the bin width in y space
_LOG_BIN = math.log(2.0 / 255.0)


def _log1mexp_of_bin(log_scale: jax.Array) -> jax.Array:
  """log(1 - exp(-w)) for w = (2/255) / scale > 0, from log w (never underflows, finite gradients)."""
  log_w = _LOG_BIN - log_scale
  w = jnp.exp(log_w)
  small = w < 1e-3
  w_big = jnp.where(small, 1e-3, w)  # keeps the unused branch's gradient finite
  return jnp.where(small, log_w - 0.5 * w, jnp.log(-jnp.expm1(-w_big)))


def _bin_log_prob(y: jax.Array, mean: jax.Array, log_scale: jax.Array) -> jax.Array:
  """log P(bin of y) under logistic(mean, exp(log_scale)), edge bins open-ended; all args broadcast.

  The interior bin is computed exactly in log space:
    sigmoid(b) - sigmoid(a) = (e^b - e^a) / ((1 + e^a)(1 + e^b)), so
    log[sigmoid(b) - sigmoid(a)] = log sigmoid(b) - softplus(a) + log(1 - e^-(b - a)),
  with a, b the standardised bin edges and b - a = (2/255) / scale. This is
  the value PixelCNN++ computes as log(max(cdf_delta, 1e-12)) where that is
  accurate; it needs neither their float32 difference of two CDFs (which
  cancels when both are near 0 or 1) nor their fallback for bins of mass
  < 1e-5 (log pdf at the bin centre + log bin width, an approximation).
  """
  log_scale = jnp.maximum(log_scale, MIN_LOG_SCALE)
  inv_scale = jnp.exp(-log_scale)
  centred = y - mean
  plus_in = inv_scale * (centred + _HALF_BIN)   # b
  min_in = inv_scale * (centred - _HALF_BIN)    # a
  log_cdf_plus = jax.nn.log_sigmoid(plus_in)    # log CDF(upper edge): the k = 0 bin
  log_sf_min = -jax.nn.softplus(min_in)         # log (1 - CDF(lower edge)): the k = 255 bin
  log_interior = log_cdf_plus - jax.nn.softplus(min_in) + _log1mexp_of_bin(log_scale)
  return jnp.where(y < -1.0 + _HALF_BIN, log_cdf_plus,
                   jnp.where(y > 1.0 - _HALF_BIN, log_sf_min, log_interior))


def _to_grid(y: jax.Array) -> jax.Array:
  """Clips y to [-1, 1] and rounds it to the nearest of the 256 values k/127.5 - 1."""
  return jnp.round((jnp.clip(y, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


@flax.struct.dataclass
class DiscretizedLogisticMixture:
  """A mixture of K discretized logistics per pixel, over images [B, H, W, C] of values k/255.

  Fields (parameters in y = 2x - 1 space, see the module doc):
    logits:     [B, H, W, K] unnormalised mixture weights.
    means:      [B, H, W, C, K] component means mu (before the RGB coefficients).
    log_scales: [B, H, W, C, K] raw log-scales; clamped below at -7 where used.
    coeffs:     [B, H, W, 3, K] (alpha, beta, gamma), tanh already applied, for
                C = 3; None for channels independent given the component (C = 1).
  """

  logits: jax.Array
  means: jax.Array
  log_scales: jax.Array
  coeffs: jax.Array | None = None

  def _channel_means(self, y_BHWC: jax.Array) -> jax.Array:
    """Each component's mean of each channel given the preceding channels y: [B, H, W, C, K]."""
    if self.coeffs is None:
      return self.means
    y_r, y_g = y_BHWC[..., 0, None], y_BHWC[..., 1, None]
    alpha, beta, gamma = self.coeffs[..., 0, :], self.coeffs[..., 1, :], self.coeffs[..., 2, :]
    mu = self.means
    return jnp.stack(jnp.broadcast_arrays(mu[..., 0, :],
                                          mu[..., 1, :] + alpha * y_r,
                                          mu[..., 2, :] + beta * y_r + gamma * y_g), axis=-2)

  def log_prob(self, x_BHWC: jax.Array, observed: jax.Array | None = None) -> jax.Array:
    """log P(x) in nats, summed over pixels and channels (the `observed` [B, H, W, 1] ones): [B].

    x holds values k/255.
    """
    y = 2.0 * x_BHWC.astype(self.means.dtype) - 1.0
    log_p_BHWCK = _bin_log_prob(y[..., None], self._channel_means(y), self.log_scales)
    log_mix_BHWK = jax.nn.log_softmax(self.logits, axis=-1) + jnp.sum(log_p_BHWCK, axis=-2)
    log_p_BHW = jax.nn.logsumexp(log_mix_BHWK, axis=-1)
    if observed is not None:
      log_p_BHW = log_p_BHW * observed[..., 0].astype(log_p_BHW.dtype)
    return jnp.sum(log_p_BHW.reshape(log_p_BHW.shape[0], -1), axis=-1)

  @property
  def mean(self) -> jax.Array:
    """An approximate mean image in [0, 1], [B, H, W, C] (the exact discrete mean is costly).

    The mixture-weighted average of the component means, each channel's taken
    with the coefficients applied to the preceding channels' (clipped)
    component means instead of their values: m_r = clip(mu_r),
    m_g = clip(mu_g + alpha m_r), m_b = clip(mu_b + beta m_r + gamma m_g), all
    per component; then clipped to [-1, 1] and mapped to [0, 1]. It ignores
    the discretisation and the mass the clipping moves onto the edge bins.
    """
    mu = self.means
    if self.coeffs is None:
      m_BHWCK = jnp.clip(mu, -1.0, 1.0)
    else:
      alpha, beta, gamma = self.coeffs[..., 0, :], self.coeffs[..., 1, :], self.coeffs[..., 2, :]
      m_r = jnp.clip(mu[..., 0, :], -1.0, 1.0)
      m_g = jnp.clip(mu[..., 1, :] + alpha * m_r, -1.0, 1.0)
      m_b = jnp.clip(mu[..., 2, :] + beta * m_r + gamma * m_g, -1.0, 1.0)
      m_BHWCK = jnp.stack([m_r, m_g, m_b], axis=-2)
    weights_BHW1K = jax.nn.softmax(self.logits, axis=-1)[..., None, :]
    y = jnp.clip(jnp.sum(weights_BHW1K * m_BHWCK, axis=-1), -1.0, 1.0)
    return 0.5 * (y + 1.0)

  def sample(self, rng: jax.Array) -> jax.Array:
    """An exact draw, [B, H, W, C] of values k/255; `rng` holds one key per example.

    Per pixel: a component by inverse CDF of one uniform, then channel by
    channel y_c = mu_c + coefficients * (already drawn channels) + s_c * L,
    L = log u - log(1 - u) logistic noise, clipped to [-1, 1] and rounded to
    the nearest of the 256 values; the later channels are conditioned on the
    rounded values, as `log_prob` conditions on the data. Uniforms are
    (j + 1/2) / 2^23, so never 0 or 1 (the noise is cut off beyond 16.6 s).
    """
    *_, C, K = self.means.shape
    u_BHWU = example_rng.uniform(rng, self.means.shape[1:3] + (1 + C,)) + 2.0 ** -24
    u_BHWU = u_BHWU.astype(self.means.dtype)
    cdf_BHWK = jnp.cumsum(jax.nn.softmax(self.logits, axis=-1), axis=-1)
    component = jnp.sum(u_BHWU[..., :1] >= cdf_BHWK[..., :-1], axis=-1)
    onehot_BHW1K = jax.nn.one_hot(component, K, dtype=self.means.dtype)[..., None, :]
    pick = lambda a: jnp.sum(a * onehot_BHW1K, axis=-1)
    mu, log_s = pick(self.means), jnp.maximum(pick(self.log_scales), MIN_LOG_SCALE)
    u = u_BHWU[..., 1:]
    noise = jnp.exp(log_s) * (jnp.log(u) - jnp.log1p(-u))
    if self.coeffs is None:
      y = _to_grid(mu + noise)
    else:
      c = pick(self.coeffs)
      y_r = _to_grid(mu[..., 0] + noise[..., 0])
      y_g = _to_grid(mu[..., 1] + c[..., 0] * y_r + noise[..., 1])
      y_b = _to_grid(mu[..., 2] + c[..., 1] * y_r + c[..., 2] * y_g + noise[..., 2])
      y = jnp.stack([y_r, y_g, y_b], axis=-1)
    return jnp.round((y + 1.0) * 127.5) / 255.0


class DLMLikelihood(Likelihood):
  """Discretized logistic mixture pixels with `num_mixtures` components; see the module doc."""

  num_mixtures: int = 10

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "DLMLikelihood":
    k = int(config.model.dlm_mixtures)
    if k < 1:
      raise UserError(f"model.dlm_mixtures must be >= 1 (the number of mixture components), got {k}")
    return cls(num_mixtures=k)

  def out_channels(self, channels: int) -> int:
    if channels == 1:
      return 3 * self.num_mixtures
    if channels == 3:
      return 10 * self.num_mixtures
    raise UserError(f"the discretized logistic mixture likelihood needs 1 (grayscale) or 3 (RGB) "
                    f"image channels, got {channels}")

  def model_input(self, image_BHWC: jax.Array, keys_B: jax.Array) -> jax.Array:
    return image_BHWC.astype(jnp.float32) / 255.0

  def __call__(self, out_BHWP: jax.Array) -> DiscretizedLogisticMixture:
    """Parses the decoder's raw output [B, H, W, P] (layout in the module doc).

    P = 3K means C = 1 and P = 10K means C = 3 (K = num_mixtures). Computes in
    at least float32.
    """
    K, P = self.num_mixtures, out_BHWP.shape[-1]
    if P == 3 * K:
      C = 1
    elif P == 10 * K:
      C = 3
    else:
      raise UserError(f"decoder output has {P} channels; a {K}-component discretized logistic "
                      f"mixture needs {3 * K} (grayscale) or {10 * K} (RGB)")
    out = out_BHWP.astype(jnp.promote_types(out_BHWP.dtype, jnp.float32))
    lead = out.shape[:-1]
    logits = out[..., :K]
    means = out[..., K:K + C * K].reshape(*lead, C, K)
    log_scales = out[..., K + C * K:K + 2 * C * K].reshape(*lead, C, K)
    coeffs = None
    if C == 3:
      coeffs = jnp.tanh(out[..., 7 * K:10 * K].reshape(*lead, 3, K))
    return DiscretizedLogisticMixture(logits, means, log_scales, coeffs)
