"""Tests of vae_jax/model.py: make_model validation, encode/decode types, learn_std, prior_sample."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import model as model_lib
from vae_jax.config import base_config
from vae_jax.errors import UserError

SHAPE = (4, 4, 3)
Z = 2


def _config(likelihood="bernoulli", **model_overrides):
  c = base_config()
  c.model.hidden = ()  # linear encoder and decoder: tiny, and linear in z
  c.model.latent_dim = Z
  c.model.likelihood = likelihood
  for k, v in model_overrides.items():
    c.model[k] = v
  return c


def _built(likelihood="bernoulli", **model_overrides):
  model = model_lib.make_model(_config(likelihood, **model_overrides), SHAPE)
  return model, model_lib.init(model, jax.random.key(0), SHAPE)


@pytest.mark.parametrize("key, value, match", [("likelihood", "poisson", "bernoulli, dlm, gaussian"),
                                               ("latent_dim", 0, "latent_dim"),
                                               ("gaussian_std", 0.0, "gaussian_std")])
def test_make_model_rejects_bad_values(key, value, match):
  """Invalid likelihood, latent_dim < 1 and gaussian_std <= 0 are UserErrors naming the key."""
  c = _config("gaussian")
  c.model[key] = value
  with pytest.raises(UserError, match=match):
    model_lib.make_model(c, SHAPE)


def test_init_is_a_function_of_the_key():
  """The same key gives the same params; a different key different ones."""
  model = model_lib.make_model(_config(), SHAPE)
  a, b, c = (model_lib.init(model, jax.random.key(k), SHAPE) for k in (0, 0, 1))
  leaves = lambda t: [np.asarray(x) for x in jax.tree.leaves(t)]
  assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
  assert not all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c)))


def test_learn_std_adds_log_std_param():
  """learn_std adds one `log_std` per channel, initialised at log(gaussian_std), and decode uses it."""
  model, params = _built("gaussian", gaussian_std=0.3, learn_std=True)
  np.testing.assert_allclose(params["likelihood"]["log_std"], np.full(SHAPE[-1], math.log(0.3)), rtol=1e-6)
  new = dict(params, likelihood={"log_std": jnp.array([-1.0, 0.0, 0.5])})
  p = model_lib.decode(new, jnp.zeros((2, Z)), model=model)
  np.testing.assert_allclose(p.log_scale, [-1.0, 0.0, 0.5])
  # The learned scale gets a gradient through the likelihood.
  x = jnp.full((2, *SHAPE), 0.5)
  g = jax.grad(lambda prm: jnp.sum(model_lib.decode(prm, jnp.zeros((2, Z)), model=model).log_prob(x)))(params)
  assert np.all(np.asarray(g["likelihood"]["log_std"]) != 0)


def test_prior_sample_temperature():
  """Temperature 0 decodes z = 0 for every key; with a linear decoder logits scale linearly in temperature."""
  model, params = _built("bernoulli")
  zero_a = model_lib.prior_sample(params, jax.random.key(1), 4, model=model, temperature=0.0).logits
  zero_b = model_lib.prior_sample(params, jax.random.key(2), 4, model=model, temperature=0.0).logits
  np.testing.assert_array_equal(zero_a, zero_b)
  np.testing.assert_array_equal(zero_a, np.broadcast_to(zero_a[0], zero_a.shape))
  np.testing.assert_allclose(zero_a, model_lib.decode(params, jnp.zeros((4, Z)), model=model).logits,
                             rtol=1e-6)
  one = model_lib.prior_sample(params, jax.random.key(1), 4, model=model, temperature=1.0).logits
  half = model_lib.prior_sample(params, jax.random.key(1), 4, model=model, temperature=0.5).logits
  assert not np.allclose(one[0], one[1])  # temperature 1 gives distinct samples
  np.testing.assert_allclose(half - zero_a, 0.5 * (one - zero_a), rtol=1e-4, atol=1e-5)
  assert model_lib.prior_sample(params, jax.random.key(1), 7, model=model).logits.shape == (7, *SHAPE)


def test_call_returns_posterior_and_likelihood_at_one_draw():
  """VAE.__call__ gives p(x|z) at a draw z ~ q: with a huge negative logvar that is z = mean."""
  model, params = _built("bernoulli")
  enc = dict(params["encoder"])
  dense = dict(enc["Dense_0"])
  dense["bias"] = dense["bias"].at[Z:].set(-60.0)  # logvar ~ -60: s ~ 1e-13
  dense["kernel"] = dense["kernel"].at[:, Z:].set(0.0)
  params = dict(params, encoder=dict(enc, Dense_0=dense))
  x = jax.random.uniform(jax.random.key(3), (3, *SHAPE))
  inference = model.apply({"params": params}, x, jax.random.split(jax.random.key(4), 3))
  q = model_lib.encode(params, x, model=model)
  np.testing.assert_allclose(inference.p_x.logits, model_lib.decode(params, q.mean, model=model).logits,
                             rtol=1e-5, atol=1e-5)
