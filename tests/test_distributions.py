"""Tests of vae_jax/distributions.py against closed forms, scipy and Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax.distributions import Bernoulli, DiagGaussian, Gaussian, reparameterize

MEAN = np.array([0.5, -1.0, 2.0], np.float32)
LOGVAR = np.array([-1.0, 0.3, 0.0], np.float32)


def _keys(seed, n):
  return jax.random.split(jax.random.key(seed), n)


N_DRAWS = 200_000


@jax.jit
def _library_draws(key):
  """N_DRAWS draws z ~ N(MEAN, exp(LOGVAR)) through DiagGaussian.sample, one key per draw."""
  mean = jnp.broadcast_to(MEAN, (N_DRAWS, MEAN.size))
  logvar = jnp.broadcast_to(LOGVAR, (N_DRAWS, LOGVAR.size))
  return DiagGaussian(mean, logvar).sample(jax.random.split(key, N_DRAWS))


def _draws(seed):
  return np.asarray(_library_draws(jax.random.key(seed)), np.float64)


def test_kl_standard_normal_matches_numpy_closed_form():
  """KL(N(m, s^2) || N(0, I)) equals the textbook formula log(1/s) + (s^2 + m^2)/2 - 1/2, summed."""
  rng = np.random.default_rng(0)
  m = rng.normal(size=(5, 4)).astype(np.float32)
  lv = rng.normal(size=(5, 4)).astype(np.float32)
  s2 = np.exp(lv.astype(np.float64))
  expected = np.sum(-0.5 * np.log(s2) + 0.5 * (s2 + m.astype(np.float64)**2) - 0.5, axis=-1)
  got = DiagGaussian(jnp.asarray(m), jnp.asarray(lv)).kl_standard_normal()
  assert got.shape == (5,)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  # Invariant: KL is zero exactly at the standard normal.
  np.testing.assert_allclose(DiagGaussian(jnp.zeros((1, 4)), jnp.zeros((1, 4))).kl_standard_normal(),
                             [0.0], atol=1e-7)


def test_kl_standard_normal_matches_monte_carlo():
  """The closed-form KL agrees with a 2e5-draw estimate of E_q[log q - log p] within 5 standard errors."""
  n = N_DRAWS
  z = _draws(seed=1)
  s2 = np.exp(LOGVAR.astype(np.float64))
  log_q = np.sum(stats.norm.logpdf(z, MEAN, np.sqrt(s2)), axis=-1)
  log_p = np.sum(stats.norm.logpdf(z), axis=-1)
  diff = log_q - log_p
  se = diff.std(ddof=1) / np.sqrt(n)
  kl = float(DiagGaussian(jnp.asarray(MEAN)[None], jnp.asarray(LOGVAR)[None]).kl_standard_normal()[0])
  assert abs(diff.mean() - kl) < 5 * se, (diff.mean(), kl, se)


def test_kl_between_diag_gaussians_matches_numpy_and_monte_carlo():
  """KL(N(m1, s1^2) || N(m2, s2^2)) = sum log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2; and by MC."""
  rng = np.random.default_rng(3)
  m1, m2 = MEAN.astype(np.float64), rng.normal(size=3)
  lv1, lv2 = LOGVAR.astype(np.float64), rng.normal(size=3)
  s1, s2 = np.exp(0.5 * lv1), np.exp(0.5 * lv2)
  expected = np.sum(np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5)
  q = DiagGaussian(jnp.asarray(m1, jnp.float32)[None], jnp.asarray(lv1, jnp.float32)[None])
  p = DiagGaussian(jnp.asarray(m2, jnp.float32)[None], jnp.asarray(lv2, jnp.float32)[None])
  np.testing.assert_allclose(q.kl(p)[0], expected, rtol=1e-5)
  np.testing.assert_allclose(q.kl(q)[0], 0.0, atol=1e-6)
  z = _draws(seed=4)
  diff = np.sum(stats.norm.logpdf(z, m1, s1) - stats.norm.logpdf(z, m2, s2), axis=-1)
  assert abs(diff.mean() - expected) < 5 * diff.std(ddof=1) / np.sqrt(diff.size)
  # With p = N(0, I) it is the standard-normal KL.
  std = DiagGaussian(jnp.zeros((1, 3)), jnp.zeros((1, 3)))
  np.testing.assert_allclose(q.kl(std), q.kl_standard_normal(), rtol=1e-6)


def test_diag_gaussian_log_prob_matches_scipy():
  """DiagGaussian.log_prob sums scipy's univariate log densities over the last axis."""
  rng = np.random.default_rng(2)
  m, lv, z = (rng.normal(size=(6, 3)).astype(np.float32) for _ in range(3))
  expected = np.sum(stats.norm.logpdf(z, m, np.exp(0.5 * lv.astype(np.float64))), axis=-1)
  got = DiagGaussian(jnp.asarray(m), jnp.asarray(lv)).log_prob(jnp.asarray(z))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_reparameterize_moments():
  """Draws have mean `mean` and variance exp(logvar), within 5 standard errors, and are uncorrelated."""
  n = N_DRAWS
  z = _draws(seed=3)
  var = np.exp(LOGVAR.astype(np.float64))
  se_mean = np.sqrt(var / n)
  se_var = var * np.sqrt(2.0 / (n - 1))
  assert np.all(np.abs(z.mean(0) - MEAN) < 5 * se_mean), (z.mean(0), MEAN)
  assert np.all(np.abs(z.var(0, ddof=1) - var) < 5 * se_var), (z.var(0), var)
  corr = np.corrcoef(z.T)[np.triu_indices(3, 1)]
  assert np.all(np.abs(corr) < 5 / np.sqrt(n)), corr


def test_reparameterize_is_differentiable():
  """d z / d mean = 1 and d z / d logvar = (z - mean) / 2 for the pathwise (reparameterised) draw."""
  keys = _keys(4, 7)
  mean = jnp.asarray(np.random.default_rng(4).normal(size=(7, 3)), jnp.float32)
  logvar = jnp.asarray(np.random.default_rng(5).normal(size=(7, 3)), jnp.float32)
  g_mean = jax.grad(lambda m: jnp.sum(reparameterize(keys, m, logvar)))(mean)
  np.testing.assert_allclose(g_mean, np.ones((7, 3)), atol=1e-6)
  g_lv = jax.grad(lambda lv: jnp.sum(reparameterize(keys, mean, lv)))(logvar)
  z = reparameterize(keys, mean, logvar)
  np.testing.assert_allclose(g_lv, 0.5 * (z - mean), rtol=1e-5, atol=1e-6)
  # E[z] is differentiable too: the gradient of the batch mean wrt the mean is 1/B per example.
  g = jax.grad(lambda m: jnp.mean(reparameterize(keys, m, logvar)[:, 0]))(mean)
  np.testing.assert_allclose(g[:, 0], np.full(7, 1 / 7), rtol=1e-6)


def test_reparameterize_per_example_keys_split_and_reorder():
  """Example i's draw depends only on its own key: unchanged when the batch is split or permuted."""
  keys = _keys(6, 4)
  rng = np.random.default_rng(6)
  mean = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
  logvar = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
  full = np.asarray(reparameterize(keys, mean, logvar))
  halves = np.concatenate([reparameterize(keys[:2], mean[:2], logvar[:2]),
                           reparameterize(keys[2:], mean[2:], logvar[2:])])
  np.testing.assert_array_equal(full, halves)
  perm = np.array([2, 0, 3, 1])
  permuted = np.asarray(reparameterize(keys[perm], mean[perm], logvar[perm]))
  np.testing.assert_array_equal(permuted, full[perm])
  # Different keys give different noise, so the checks above are not vacuous.
  eps = (full - np.asarray(mean)) * np.exp(-0.5 * np.asarray(logvar))
  assert not np.allclose(eps[0], eps[1])


def _log_sigmoid(l):
  """log sigmoid(l) = -log(1 + exp(-l)), stably in float64."""
  return -np.logaddexp(0.0, -l)


def test_bernoulli_log_prob_matches_numpy():
  """Bernoulli.log_prob = sum x log p + (1 - x) log(1 - p) over every non-batch axis."""
  rng = np.random.default_rng(7)
  logits = rng.normal(scale=3.0, size=(3, 4, 4, 2)).astype(np.float32)
  x = rng.uniform(size=(3, 4, 4, 2)).astype(np.float32)  # soft targets in [0, 1] too
  x[0] = (x[0] > 0.5)
  l64 = logits.astype(np.float64)
  expected = np.sum((x * _log_sigmoid(l64) + (1 - x) * _log_sigmoid(-l64)).reshape(3, -1), axis=-1)
  got = Bernoulli(jnp.asarray(logits)).log_prob(jnp.asarray(x))
  assert got.shape == (3,)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bernoulli_log_prob_extreme_logits_finite():
  """Logits of +-50 give finite log-probabilities: ~0 when right and ~-50 when wrong."""
  logits = jnp.array([[50.0, -50.0, 50.0, -50.0]])
  x = jnp.array([[1.0, 0.0, 0.0, 1.0]])
  per_pixel = [float(Bernoulli(logits[:, i:i + 1]).log_prob(x[:, i:i + 1])[0]) for i in range(4)]
  assert np.all(np.isfinite(per_pixel))
  np.testing.assert_allclose(per_pixel, [0.0, 0.0, -50.0, -50.0], atol=1e-5)
  g = jax.grad(lambda l: jnp.sum(Bernoulli(l).log_prob(x)))(logits)
  assert np.all(np.isfinite(g))


@pytest.mark.parametrize("per_channel", [False, True])
def test_gaussian_log_prob_matches_scipy(per_channel):
  """Gaussian.log_prob sums scipy.stats.norm.logpdf over pixels, for scalar and per-channel log_scale."""
  rng = np.random.default_rng(8)
  loc = rng.uniform(size=(2, 3, 3, 3)).astype(np.float32)
  x = rng.uniform(size=(2, 3, 3, 3)).astype(np.float32)
  log_scale = (np.array([-2.0, -1.0, 0.5], np.float32) if per_channel
               else np.float32(np.log(0.1)))
  expected = np.sum(stats.norm.logpdf(x, loc, np.exp(log_scale.astype(np.float64)))
                    .reshape(2, -1), axis=-1)
  got = Gaussian(jnp.asarray(loc), jnp.asarray(log_scale)).log_prob(jnp.asarray(x))
  assert got.shape == (2,)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_pixel_samples_have_the_distributions_moments():
  """Bernoulli.sample: each pixel is 1 with frequency sigmoid(l); Gaussian.sample with a per-channel
  log_scale: each pixel's mean is loc and its variance exp(2 log_scale) of its channel (5 SE)."""
  n = 20_000
  keys = jax.random.split(jax.random.key(7), n)
  logits = jnp.array([-3.0, -0.5, 0.0, 0.7, 2.0, 4.0]).reshape(1, 2, 3, 1)
  ones = np.asarray(Bernoulli(jnp.broadcast_to(logits, (n, 2, 3, 1))).sample(keys), np.float64)
  assert set(np.unique(ones)) <= {0.0, 1.0}
  p = 1 / (1 + np.exp(-np.asarray(logits[0], np.float64)))
  assert np.all(np.abs(ones.mean(0) - p) < 5 * np.sqrt(p * (1 - p) / n)), (ones.mean(0), p)
  loc = jnp.array([0.1, 0.5, 0.9, 0.3, 0.2, 0.7]).reshape(1, 1, 2, 3)
  log_scale = jnp.array([-2.0, -1.0, 0.5])
  x = np.asarray(Gaussian(jnp.broadcast_to(loc, (n, 1, 2, 3)), log_scale).sample(keys), np.float64)
  var = np.broadcast_to(np.exp(2 * np.asarray(log_scale, np.float64)), (1, 2, 3))
  assert np.all(np.abs(x.mean(0) - loc[0]) < 5 * np.sqrt(var / n))
  assert np.all(np.abs(x.var(0) / var - 1) < 5 * np.sqrt(2 / n))
  assert abs(np.corrcoef(x[:, 0, 0, 0], x[:, 0, 1, 0])[0, 1]) < 5 / np.sqrt(n)  # independent pixels
