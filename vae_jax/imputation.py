"""Imputing missing pixels with a trained VAE, by importance sampling (Mattei & Frellsen 2019).

Given an image's observed pixels x_o and K posterior draws z_k ~ q(z | x_o)
(the encoder sees x with the missing pixels at 0), the self-normalised
importance weights are

    w_k = p(x_o | z_k) p(z_k) / q(z_k | x_o)  /  sum_j (same for j),

so that sum_k w_k f(z_k) estimates E[f(z) | x_o] under the model.

Single imputation: the conditional mean of the missing pixels,
    x_m ~= sum_k w_k E[x_m | z_k]      (Mattei & Frellsen 2019, sec. 4).
Multiple imputation by sampling importance resampling: each of M imputations
picks one k with probability w_k and shows p(x_m | z_k)'s mean (`mode="mean"`,
as our grids do) or a draw from it (`mode="sample"`).

The K draws are visited one at a time in a `lax.scan` that keeps a running
log-sum of the weights, so memory does not grow with K; each resampled
imputation is a streaming (reservoir) choice: draw k replaces the current
pick with probability exp(log w_k - log sum_{j<=k} w_j), which picks k with
probability w_k exactly. Every output keeps the observed pixels of the input
exactly; `effective_sample_size` = (sum w)^2 / sum w^2 says how many of the K
draws the weights really use.
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp

from vae_jax import losses
from vae_jax import model as model_lib

MODES = ("mean", "sample")


@flax.struct.dataclass
class Imputed:
  """Images in [0, 1] whose missing pixels are filled and observed pixels are the input's."""

  single: jax.Array             # [B, H, W, C]: the importance-weighted conditional mean
  multiple: jax.Array           # [M, B, H, W, C]: resampled imputations (M may be 0)
  effective_sample_size: jax.Array  # [B]


@flax.struct.dataclass
class _Carry:
  log_total: jax.Array   # [B]  log sum_{j<=k} w_j (unnormalised)
  log_sq: jax.Array      # [B]  log sum_{j<=k} w_j^2
  mean: jax.Array        # [B, H, W, C]  sum_j w_j E[x | z_j] / sum_j w_j
  picks: jax.Array       # [M, B, H, W, C]  each imputation's current pick


def _uniforms(keys_B: jax.Array, k: jax.Array, num: int) -> jax.Array:
  """[num, B] uniforms for draw k's resampling decisions; a pure function of each example's key."""
  def one(key):
    return jax.random.uniform(jax.random.fold_in(jax.random.fold_in(key, 0x1A7E), k), (num,))
  return jax.vmap(one)(keys_B).T


def _step(carry: _Carry, k: jax.Array, *, params, x, observed, context, latent_keys, pick_keys,
          y, model, mode: str) -> tuple[_Carry, None]:
  """Adds importance draw k to the running weighted mean and to every reservoir."""
  inference = model_lib.infer(params, context, latent_keys, model=model, y=y, sample=k)
  log_w = inference.log_weight(x, observed)
  log_total = jnp.logaddexp(carry.log_total, log_w)
  share = jnp.exp(log_w - log_total)                     # w_k / sum_{j<=k} w_j, [B]
  expand = (slice(None),) + (None,) * (x.ndim - 1)
  mean = carry.mean + share[expand] * (inference.p_x.mean - carry.mean)
  shown = inference.p_x.mean
  if mode == "sample":
    shown = inference.p_x.sample(jax.vmap(lambda key: jax.random.fold_in(key, k))(pick_keys))
  take = _uniforms(pick_keys, k, carry.picks.shape[0]) < share[None, :]  # [M, B]
  picks = jnp.where(take[(...,) + (None,) * (x.ndim - 1)], shown[None], carry.picks)
  log_sq = jnp.logaddexp(carry.log_sq, 2.0 * log_w)
  return _Carry(log_total=log_total, log_sq=log_sq, mean=mean, picks=picks), None


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "num_imputations", "mode"))
def impute(params, image_BHWC: jax.Array, observed_BHWC: jax.Array, keys_B: jax.Array, *, model,
           num_samples: int, num_imputations: int = 0, mode: str = "mean",
           y: jax.Array | None = None) -> Imputed:
  """Fills the missing pixels (`observed_BHWC` False, [B, H, W, 1]) of uint8 images from K = `num_samples`
  importance draws; `y` the labels of a conditional model. See the module doc."""
  batch = {"image": image_BHWC, "observed": observed_BHWC}
  if y is not None:
    batch["label"] = y
  data_keys, pick_keys = losses.split_keys(keys_B)
  x, context, latent_keys = losses.posterior(params, batch, data_keys, model=model)
  b = image_BHWC.shape[0]
  start = _Carry(log_total=jnp.full((b,), -jnp.inf), log_sq=jnp.full((b,), -jnp.inf),
                 mean=jnp.zeros(image_BHWC.shape, jnp.float32),
                 picks=jnp.zeros((num_imputations, *image_BHWC.shape), jnp.float32))
  step = functools.partial(_step, params=params, x=x, observed=observed_BHWC, context=context,
                           latent_keys=latent_keys, pick_keys=pick_keys, y=y, model=model, mode=mode)
  end, _ = jax.lax.scan(step, start, jnp.arange(num_samples))
  given = image_BHWC.astype(jnp.float32) / 255.0
  keep = observed_BHWC.astype(bool)
  return Imputed(single=jnp.where(keep, given, jnp.clip(end.mean, 0.0, 1.0)),
                 multiple=jnp.where(keep[None], given[None], jnp.clip(end.picks, 0.0, 1.0)),
                 effective_sample_size=jnp.exp(2.0 * end.log_total - end.log_sq))


def missing_mse(imputed_BHWC: jax.Array, image_BHWC: jax.Array, observed_BHWC: jax.Array) -> jax.Array:
  """Mean squared error over the missing pixels (all channels) of [0, 1] images against uint8 truth."""
  missing = 1.0 - jnp.broadcast_to(observed_BHWC, image_BHWC.shape).astype(jnp.float32)
  err = jnp.square(imputed_BHWC - image_BHWC.astype(jnp.float32) / 255.0)
  return jnp.sum(err * missing) / jnp.maximum(jnp.sum(missing), 1.0)
