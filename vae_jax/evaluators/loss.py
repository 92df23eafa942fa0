"""`loss`: the run's configured objective on the test split, whatever it is.

The loss function sees each padded batch with its mask (`losses.batch_mean`
honours it), the fixed per-example keys and the current step; its metrics,
batch means over real examples, are weighted by each batch's count. For
`loss=elbo` these are the single-sample `neg_elbo`, `recon`, `kl`, `elbo` and
`bits_per_dim` of every test example once.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from vae_jax.evaluators.base import EvalSetup, keys_for, means, sum_over_split


def _loss_sums(params, batch, eval_key, step, *, loss_fn, model, config, axis_name=None):
  """Each metric times this shard's count of real examples, summed over devices."""
  loss, metrics = loss_fn(params, batch, keys_for(batch, eval_key), step, model=model, config=config)
  count = jnp.sum(batch["mask"].astype(jnp.float32))
  sums = {k: v * count for k, v in dict(metrics, loss=loss).items()}
  sums["count"] = count
  return jax.lax.psum(sums, axis_name) if axis_name is not None else sums


class LossEvaluator:
  def __init__(self, setup: EvalSetup):
    self.setup = setup
    self._sums = setup.backend.compile(functools.partial(
        _loss_sums, loss_fn=setup.loss_fn, model=setup.model, config=setup.config))
    self._key = setup.backend.replicate(setup.eval_key)

  def __call__(self, params, source, step: int) -> dict[str, float]:
    d_step = self.setup.backend.replicate(jnp.asarray(step, jnp.int32))
    return means(sum_over_split(lambda b: self._sums(params, b, self._key, d_step), source, self.setup))
