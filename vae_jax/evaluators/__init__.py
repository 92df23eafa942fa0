"""Evaluators chosen by name (`config.evaluators`, `python -m vae_jax.evaluate --metrics`).

See `base.py` for the contract. To add one: a file with a class taking an
`EvalSetup`, and its line below.
"""

from vae_jax.evaluators.active_units import ActiveUnitsEvaluator
from vae_jax.evaluators.base import EVALUATORS, EvalSetup, make_evaluators, run_all
from vae_jax.evaluators.elbo import ElboEvaluator
from vae_jax.evaluators.is_nll import IsNllEvaluator
from vae_jax.evaluators.loss import LossEvaluator
from vae_jax.evaluators.sample_quality import NAMES as SAMPLE_QUALITY_NAMES, SampleQualityEvaluator

EVALUATORS.register("loss")(LossEvaluator)
EVALUATORS.register("elbo")(ElboEvaluator)
EVALUATORS.register("is_nll")(IsNllEvaluator)
EVALUATORS.register("active_units")(ActiveUnitsEvaluator)
for _name in SAMPLE_QUALITY_NAMES:  # one instance serves all of them: the samples are drawn once
  EVALUATORS.register(_name)(SampleQualityEvaluator)

__all__ = ["EVALUATORS", "EvalSetup", "make_evaluators", "run_all"]
