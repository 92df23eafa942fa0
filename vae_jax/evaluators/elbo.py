"""`elbo`: the single-sample ELBO terms of every test example, whatever the training loss.

Per example: recon = -log p(x|z), kl (and kl_g per group), neg_elbo, at one
posterior draw from the example's fixed key; averaged over the split.
bits_per_dim is the likelihood's conversion of the mean neg_elbo.
"""

from __future__ import annotations

import functools

from vae_jax import losses
from vae_jax.evaluators.base import EvalSetup, keys_for, masked_sums, means, num_dims, sum_over_split


def _elbo_sums(params, batch, eval_key, *, model, axis_name=None):
  terms = losses.elbo_terms(params, batch, keys_for(batch, eval_key), model=model)
  return masked_sums(terms, batch["mask"], axis_name)


class ElboEvaluator:
  def __init__(self, setup: EvalSetup):
    self.setup = setup
    self._sums = setup.backend.compile(functools.partial(_elbo_sums, model=setup.model))
    self._key = setup.backend.replicate(setup.eval_key)

  def __call__(self, params, source, step: int) -> dict[str, float]:
    del step
    out = means(sum_over_split(lambda b: self._sums(params, b, self._key), source, self.setup))
    out["elbo"] = -out["neg_elbo"]
    out["bits_per_dim"] = float(self.setup.model.likelihood.nats_to_bits_per_dim(
        out["neg_elbo"], num_dims(source)))
    return out
