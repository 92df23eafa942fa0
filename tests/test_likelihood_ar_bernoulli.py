"""Tests of vae_jax/likelihoods/ar_bernoulli.py: normalisation, causality, and the sequential decoder.

Normalisation sums p(x) over every binary image of a small size; causality reads the Jacobian of
the parallel logits; the sampler is checked against the parallel pass (the draws it made must be
the ones the parallel conditionals give) and by a chi-square test of its distribution.
"""

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from vae_jax.errors import UserError
from vae_jax.likelihoods.ar_bernoulli import ARBernoulliLikelihood, causal_offsets
from vae_jax.distributions import Bernoulli


def _dist(height, width, *, kernel=3, depth=2, features=3, hidden=8, batch=2, seed=0, scale=0.7):
  """A likelihood with random (non-zero) weights and random features [batch, height, width, features]."""
  lik = ARBernoulliLikelihood(features=features, kernel=kernel, hidden=hidden, depth=depth)
  feat = jax.random.normal(jax.random.key(seed), (batch, height, width, features))
  params = lik.init(jax.random.key(seed + 1), feat)["params"]
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed + 2), len(leaves))
  params = jax.tree.unflatten(tree, [a + scale * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
  return lik, params, feat


def _all_images(height, width):
  return jnp.asarray(np.array(list(itertools.product([0, 1], repeat=height * width)), np.float32)
                     .reshape(-1, height, width, 1))


@pytest.mark.parametrize("kernel, depth", [(3, 1), (3, 2), (5, 1)])
def test_probabilities_of_all_binary_images_sum_to_one(kernel, depth):
  lik, params, feat = _dist(3, 3, kernel=kernel, depth=depth)
  xs = _all_images(3, 3)  # 512 images
  for b in range(feat.shape[0]):
    d = lik.apply({"params": params}, jnp.broadcast_to(feat[b:b + 1], (len(xs), *feat.shape[1:])))
    total = np.sum(np.exp(np.asarray(d.log_prob(xs), np.float64)))
    assert total == pytest.approx(1.0, abs=1e-5)


def test_each_logit_depends_only_on_earlier_pixels_of_its_window():
  height = width = 6
  lik, params, feat = _dist(height, width, kernel=5, batch=1)
  d = lik.apply({"params": params}, feat)
  x = (jax.random.uniform(jax.random.key(5), (1, height, width, 1)) < 0.5).astype(jnp.float32)
  jac = jax.jacfwd(lambda v: d.logits(v).reshape(-1))(x).reshape(height * width, height * width)
  window = set(causal_offsets(2))
  for i in range(height * width):
    for j in range(height * width):
      dy, dx = j // width - i // width, j % width - i % width
      if (dy, dx) not in window:  # later pixels, the pixel itself, and anything outside the window
        assert jac[i, j] == 0.0, (i, j)
  inside = [jac[i, j] for i in range(height * width) for j in range(height * width)
            if (j // width - i // width, j % width - i % width) in window]
  assert np.count_nonzero(np.asarray(inside)) > 0.9 * len(inside)


def test_with_zero_output_weights_it_is_the_factorised_bernoulli():
  lik, params, feat = _dist(4, 5)
  params = dict(params, w_o=jnp.zeros_like(params["w_o"]), b_o=jnp.zeros_like(params["b_o"]))
  d = lik.apply({"params": params}, feat)
  x = (jax.random.uniform(jax.random.key(3), (2, 4, 5, 1)) < 0.5).astype(jnp.float32)
  np.testing.assert_allclose(d.log_prob(x), Bernoulli(feat[..., :1]).log_prob(x), rtol=1e-6)


def test_sample_draws_each_pixel_from_the_parallel_conditionals():
  """x_i = [u_i < sigmoid(l_i(x_<i))] for the sampler's own uniforms u: the sequential decoder and
  log_prob's parallel pass describe the same distribution."""
  from vae_jax import example_rng
  lik, params, feat = _dist(7, 6, kernel=5, batch=3)
  d = lik.apply({"params": params}, feat)
  keys = jax.random.split(jax.random.key(9), 3)
  x = d.sample(keys)
  u = example_rng.uniform(keys, (7, 6))[..., None]
  p = jax.nn.sigmoid(d.logits(x))
  np.testing.assert_array_equal(np.asarray(x), np.asarray((u < p).astype(jnp.float32)))
  m = d.mean  # probabilities fed back: a fixed point of the parallel pass
  np.testing.assert_allclose(m, jax.nn.sigmoid(d.logits(m)), atol=1e-6)


def test_sampler_frequencies_match_log_prob():
  lik, params, feat = _dist(2, 2, batch=1, scale=0.5)
  n = 40_000
  d = lik.apply({"params": params}, jnp.broadcast_to(feat, (n, 2, 2, feat.shape[-1])))
  x = np.asarray(d.sample(jax.random.split(jax.random.key(4), n))).reshape(n, 4).astype(int)
  counts = np.bincount(x @ np.array([8, 4, 2, 1]), minlength=16)
  xs = _all_images(2, 2)
  d16 = lik.apply({"params": params}, jnp.broadcast_to(feat, (16, 2, 2, feat.shape[-1])))
  probs = np.asarray(jnp.exp(d16.log_prob(xs)), np.float64)
  assert stats.chisquare(counts, n * probs / probs.sum()).pvalue > 1e-3


def _config(**model):
  c = ml_collections.ConfigDict({"data": {"binarize": True}, "model": {
      "ar_features": 4, "ar_kernel": 7, "ar_hidden": 32, "ar_depth": 1}})
  c.model.update(model)
  return c


@pytest.mark.parametrize("model, fragment", [
    ({"ar_kernel": 4}, "ar_kernel must be odd"),
    ({"ar_kernel": 1}, "ar_kernel must be odd"),
    ({"ar_hidden": 0}, "ar_hidden must be >= 1"),
])
def test_bad_settings_are_one_clear_error(model, fragment):
  with pytest.raises(UserError, match=fragment):
    ARBernoulliLikelihood.from_config(_config(**model))


def test_colour_images_are_refused():
  with pytest.raises(UserError, match="grayscale"):
    ARBernoulliLikelihood.from_config(_config()).out_channels(3)
