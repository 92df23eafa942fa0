"""Training stability for every model: an EMA of the parameters, and update skipping.

EMA (Polyak averaging). With `ema_decay` = d > 0 the state keeps, from ema_0 = params_0,

    ema_{t+1} = d_t ema_t + (1 - d_t) params_{t+1},   d_t = min(d, (1 + t) / (10 + t))

at update t = 0, 1, ... (the warm-up of TF's ExponentialMovingAverage). Without
it the initial parameters keep weight d^t (0.999^2000 = 0.14); with it their
weight is prod_s d_s = 1 / C(t + 9, 9) (2e-13 after 100 updates) while t is below
(10d - 1) / (1 - d) (8,990 for 0.999), after which d_t = d. Evaluation, image grids,
sample.py and `python -m vae_jax.evaluate` use the EMA when present.

Update skipping (`skip_updates`). An update is skipped - parameters and
optimizer state left exactly as they were - when the global gradient norm is
not finite, or when it exceeds `skip_factor` times the `skip_quantile`
quantile of the last `skip_window` finite norms (a running quantile, active
once the window is full). The window records every finite norm, skipped or
not, so a lasting rise in the norm level (a new phase of training) lifts the
threshold within half a window: training never stalls on a stale fixed
threshold, VDVAE's most reported failure. Skip counts are metrics; the
trainer stops with one line after `max_consecutive_skips` in a row.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections


@flax.struct.dataclass
class SkipState:
  norms_W: jax.Array       # float32 [W]: the last W finite gradient norms (a ring buffer)
  num_seen: jax.Array      # int32: finite norms recorded so far
  skipped: jax.Array       # int32: updates skipped so far
  consecutive: jax.Array   # int32: updates skipped in a row, up to now


def init_skip_state(window: int) -> SkipState:
  def zero():  # a buffer per field: a donated state must not hold one buffer twice
    return jnp.zeros((), jnp.int32)
  return SkipState(norms_W=jnp.zeros((window,), jnp.float32), num_seen=zero(), skipped=zero(),
                   consecutive=zero())


def skip_threshold(state: SkipState, *, quantile: float, factor: float) -> jax.Array:
  """factor x the running quantile of the recorded norms; +inf until the window is full."""
  full = state.num_seen >= state.norms_W.shape[0]
  return jnp.where(full, factor * jnp.quantile(state.norms_W, quantile), jnp.inf)


def decide_skip(grad_norm: jax.Array, state: SkipState, *, quantile: float,
                factor: float) -> tuple[jax.Array, jax.Array, SkipState]:
  """(skip?, the threshold used, the new state) for this step's gradient norm."""
  threshold = skip_threshold(state, quantile=quantile, factor=factor)
  finite = jnp.isfinite(grad_norm)
  skip = ~finite | (grad_norm > threshold)
  window = state.norms_W.shape[0]
  slot = state.num_seen % window
  norms = jnp.where(finite, state.norms_W.at[slot].set(grad_norm), state.norms_W)
  new = SkipState(norms_W=norms, num_seen=state.num_seen + finite.astype(jnp.int32),
                  skipped=state.skipped + skip.astype(jnp.int32),
                  consecutive=jnp.where(skip, state.consecutive + 1, 0))
  return skip, threshold, new


def keep_if(skip: jax.Array, old: Any, new: Any) -> Any:
  """`old` where skip, else `new`, leaf by leaf (a skipped update leaves the state untouched)."""
  return jax.tree.map(lambda o, n: jnp.where(skip, o, n), old, new)


def ema_decay_at(decay: float, step: jax.Array) -> jax.Array:
  """d_t = min(decay, (1 + t) / (10 + t)) for update t (0 for the first)."""
  t = jnp.asarray(step, jnp.float32)
  return jnp.minimum(decay, (1.0 + t) / (10.0 + t))


def ema_update(ema: Any, params: Any, decay: float, step: jax.Array) -> Any:
  """ema <- d_t ema + (1 - d_t) params, with d_t = `ema_decay_at(decay, step)`."""
  d = ema_decay_at(decay, step)
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


def validate(config: ml_collections.ConfigDict) -> list[str]:
  """Problems with the stability keys, as messages (empty when fine)."""
  problems = []
  if not 0.0 <= config.ema_decay < 1.0:
    problems.append(f"ema_decay must be in [0, 1), got {config.ema_decay}; 0 turns the EMA off")
  if config.skip_window < 2:
    problems.append(f"skip_window must be >= 2, got {config.skip_window}")
  if not 0.0 < config.skip_quantile <= 1.0:
    problems.append(f"skip_quantile must be in (0, 1], got {config.skip_quantile}")
  if not config.skip_factor > 0:
    problems.append(f"skip_factor must be > 0, got {config.skip_factor}")
  if config.max_consecutive_skips < 1:
    problems.append(f"max_consecutive_skips must be >= 1, got {config.max_consecutive_skips}")
  return problems
