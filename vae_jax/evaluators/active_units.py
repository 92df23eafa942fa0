"""`active_units`: latent units the posterior uses (Burda et al. 2016, sec. 5.2).

Unit u is active when A_u = Cov_x(E_{q(z|x)}[z_u]) > `active_units_threshold`
(0.01 in the paper). E_q[z_u] is read at the posterior's zero-noise path
(every group at its mean given the means above it): exact for a one-group
model and for bottom-up inference's first layer, an approximation deeper in
a hierarchy. Reports `active_units` and, with several groups,
`active_units_g{g}` (generative order, 0 = top).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import losses
from vae_jax import model as model_lib
from vae_jax.evaluators.base import EvalSetup, keys_for, sum_over_split


def _moment_sums(params, batch, eval_key, *, model, axis_name=None):
  """Per unit: sum_b m_b mu_bu, sum_b m_b mu_bu^2, and the count, mu = E_q[z] at the mean path."""
  _, context, latent_keys = losses.posterior(params, batch, keys_for(batch, eval_key), model=model)
  inference = model_lib.infer(params, context, latent_keys, model=model, y=batch.get("label"),
                              temperature=0.0)
  mask = batch["mask"].astype(jnp.float32)[:, None]
  sums = {}
  for g, group in enumerate(inference.groups):
    mu = group.z.reshape(group.z.shape[0], -1)
    sums[f"s{g}"] = jnp.sum(mu * mask, axis=0)
    sums[f"q{g}"] = jnp.sum(jnp.square(mu) * mask, axis=0)
  sums["count"] = jnp.sum(mask)
  return jax.lax.psum(sums, axis_name) if axis_name is not None else sums


class ActiveUnitsEvaluator:
  def __init__(self, setup: EvalSetup):
    self.setup = setup
    self.threshold = float(setup.config.active_units_threshold)
    self._sums = setup.backend.compile(functools.partial(_moment_sums, model=setup.model))
    self._key = setup.backend.replicate(setup.eval_key)

  def __call__(self, params, source, step: int) -> dict[str, float]:
    del step
    totals = sum_over_split(lambda b: self._sums(params, b, self._key), source, self.setup)
    n = float(totals["count"])
    counts = []
    for g in range(sum(1 for k in totals if k.startswith("s"))):
      mean = totals[f"s{g}"] / n
      cov = totals[f"q{g}"] / n - mean**2
      counts.append(int(np.sum(cov > self.threshold)))
    out = {"active_units": sum(counts)}
    if len(counts) > 1:
      out.update({f"active_units_g{g}": c for g, c in enumerate(counts)})
    return out

