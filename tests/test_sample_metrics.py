"""Sample-quality metrics against closed forms and brute-force computations written independently here."""

import itertools
import math

import numpy as np
import pytest
import scipy.linalg

from vae_jax import sample_metrics as sm


def _random_cov(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_scipy_sqrtm_on_random_gaussians():
  rng = np.random.default_rng(0)
  for d in (1, 3, 16):
    mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
    cov_a, cov_b = _random_cov(rng, d), _random_cov(rng, d)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * covmean)
    assert sm.frechet_distance(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected, rel=1e-8, abs=1e-9)


def test_frechet_distance_closed_form_for_diagonal_gaussians_and_zero_for_equal():
  mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
  var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
  # W2^2 between diagonal Gaussians: sum (mu_a - mu_b)^2 + sum (sd_a - sd_b)^2.
  expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
  assert sm.frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b)) == pytest.approx(expected)
  cov = _random_cov(np.random.default_rng(1), 5)
  assert abs(sm.frechet_distance(np.ones(5), cov, np.ones(5), cov)) < 1e-9


def test_fid_of_samples_approaches_the_distance_of_the_generating_gaussians():
  rng = np.random.default_rng(2)
  d = 4
  mu_a, mu_b, cov_a, cov_b = rng.normal(size=d), rng.normal(size=d), _random_cov(rng, d), _random_cov(rng, d)
  a = rng.multivariate_normal(mu_a, cov_a, size=200_000)
  b = rng.multivariate_normal(mu_b, cov_b, size=200_000)
  assert sm.fid(a, b) == pytest.approx(sm.frechet_distance(mu_a, cov_a, mu_b, cov_b), rel=0.02)


def _mmd2_by_loops(x, y):
  d = x.shape[1]
  k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
  n, m = len(x), len(y)
  kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
  return kxx + kyy - 2 * kxy


def test_kid_equals_the_unbiased_mmd_by_loops_when_each_subset_is_the_whole_set():
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(9, 5)), rng.normal(0.5, 1.0, size=(9, 5))
  mean, std = sm.kid(x, y, num_subsets=3, subset_size=100)  # subsets of min(100, 9, 9): permutations
  assert mean == pytest.approx(_mmd2_by_loops(x, y), rel=1e-10)
  assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
  rng = np.random.default_rng(4)
  a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
  mean, std = sm.kid(a, b, num_subsets=50, subset_size=500)
  assert abs(mean) < 3 * std / math.sqrt(50) + 1e-4
  shifted = rng.normal(0.3, 1.0, size=(2000, 8))
  mean_shift, _ = sm.kid(a, shifted, num_subsets=50, subset_size=500)
  assert mean_shift > 10 * max(abs(mean), 1e-4)


def test_knn_radii_and_precision_recall_match_brute_force():
  rng = np.random.default_rng(5)
  real, fake = rng.normal(size=(40, 3)), rng.normal(0.7, 1.2, size=(30, 3))
  k = 3

  def radii(s):
    return np.array([sorted(np.linalg.norm(s - p, axis=1))[k] for p in s])  # [0] is the point itself
  assert np.allclose(sm.knn_radii(real, k, chunk=7), radii(real))

  def inside(points, centres, r):
    return np.mean([any(np.linalg.norm(p - c) <= rc for c, rc in zip(centres, r)) for p in points])
  precision, recall = sm.precision_recall(real, fake, k, chunk=11)
  assert precision == pytest.approx(inside(fake, real, radii(real)))
  assert recall == pytest.approx(inside(real, fake, radii(fake)))


def test_dropping_half_the_modes_costs_recall_not_precision():
  rng = np.random.default_rng(6)
  centres = rng.normal(scale=10.0, size=(10, 6))
  real = np.concatenate([c + rng.normal(size=(200, 6)) for c in centres])
  full = np.concatenate([c + rng.normal(size=(200, 6)) for c in centres])
  half = np.concatenate([c + rng.normal(size=(400, 6)) for c in centres[:5]])
  p_full, r_full = sm.precision_recall(real, full)
  p_half, r_half = sm.precision_recall(real, half)
  assert r_full > 0.8 and r_half < 0.55
  assert p_half > 0.9 and p_half >= p_full - 0.05


def test_realism_is_at_least_one_inside_the_real_balls_and_falls_far_away():
  rng = np.random.default_rng(7)
  real = rng.normal(size=(500, 4))
  near, far = real[:20] + 1e-6, real[:20] + 50.0
  radii = sm.knn_radii(real)
  kept = radii <= np.median(radii)
  scores = sm.realism(real, near)
  assert np.all(scores[kept[:20]] >= 1.0)
  assert np.all(sm.realism(real, far) < 0.2)
  # The score by its definition, by loops over the kept real points.
  g = far[0]
  expected = max(r / np.linalg.norm(g - p) for p, r in zip(real[kept], radii[kept]))
  assert sm.realism(real, far[:1])[0] == pytest.approx(expected)


@pytest.mark.parametrize("labels, entropy, coverage", [
    (list(range(10)) * 5, math.log(10), 1.0),
    (list(range(5)) * 10, math.log(5), 0.5),
    ([3] * 50, 0.0, 0.1),
    # C = 3: 12 of 60 is above half of 1/C (covered); 3 of 60 is below it (not).
    ([0] * 3 + [1] * 12 + [2] * 45, None, 2 / 3),
])
def test_class_histogram_entropy_and_coverage(labels, entropy, coverage):
  num_classes = 3 if max(labels) == 2 and len(labels) == 60 else 10
  out = sm.class_histogram(np.array(labels), num_classes)
  if entropy is not None:
    assert out["class_entropy"] == pytest.approx(entropy)
  assert out["class_coverage"] == pytest.approx(coverage)


def test_gaussian_stats_is_the_unbiased_covariance():
  x = np.array(list(itertools.product([0.0, 1.0], repeat=2)))
  mu, cov = sm.gaussian_stats(x)
  assert np.allclose(mu, [0.5, 0.5])
  assert np.allclose(cov, np.eye(2) * (1.0 / 3.0))  # sum of squares 4 x 0.25, over N - 1 = 3
