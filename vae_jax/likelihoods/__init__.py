"""Pixel likelihoods p(x | z), one file each, chosen by `config.model.likelihood`.

See `base.py` for the contract. To add one: a file with a `Likelihood`
subclass, and its line below.
"""

from vae_jax.likelihoods.ar_bernoulli import ARBernoulliLikelihood
from vae_jax.likelihoods.base import LIKELIHOODS, Likelihood, make_likelihood
from vae_jax.likelihoods.bernoulli import BernoulliLikelihood
from vae_jax.likelihoods.dlm import DLMLikelihood
from vae_jax.likelihoods.gaussian import GaussianLikelihood

LIKELIHOODS.register("bernoulli")(BernoulliLikelihood)
LIKELIHOODS.register("gaussian")(GaussianLikelihood)
LIKELIHOODS.register("dlm")(DLMLikelihood)
LIKELIHOODS.register("ar_bernoulli")(ARBernoulliLikelihood)

__all__ = ["LIKELIHOODS", "Likelihood", "make_likelihood"]
