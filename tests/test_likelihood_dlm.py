"""Tests of vae_jax/likelihoods/dlm.py: normalisation, a float64 reference, tails and the sampler.

The reference (`_ref_log_prob`) is the textbook formula in numpy float64:
direct differences of sigmoids, open-ended edge bins, a direct mixture sum,
no log-space tricks. It parses the decoder output with the layout the
module doc states.
"""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import special, stats

from vae_jax.errors import UserError
from vae_jax.likelihoods.dlm import DiscretizedLogisticMixture, DLMLikelihood

ALL_K = np.arange(256)
ALL_X = (ALL_K / 255.0).astype(np.float32)


def _keys(seed, n):
  return jax.random.split(jax.random.key(seed), n)


def _parse_ref(out, C):
  """numpy float64 parameters from a raw output [..., P] with the documented layout."""
  out = np.asarray(out, np.float64)
  K = out.shape[-1] // (3 if C == 1 else 10)
  lead = out.shape[:-1]
  logits = out[..., :K]
  means = out[..., K:K + C * K].reshape(*lead, C, K)
  log_s = out[..., K + C * K:K + 2 * C * K].reshape(*lead, C, K)
  coeffs = np.tanh(out[..., 7 * K:].reshape(*lead, 3, K)) if C == 3 else None
  return logits, means, log_s, coeffs


def _ref_channel_probs(k_int, means, log_s, coeffs):
  """P_k(channel c | preceding channels) [..., C, K] by sigmoid differences, float64."""
  y = k_int / 127.5 - 1.0                                   # [..., C]
  m = np.broadcast_to(means, np.broadcast_shapes(means.shape, y.shape + means.shape[-1:])).copy()
  if coeffs is not None:
    m[..., 1, :] += coeffs[..., 0, :] * y[..., 0, None]
    m[..., 2, :] += coeffs[..., 1, :] * y[..., 0, None] + coeffs[..., 2, :] * y[..., 1, None]
  s = np.exp(np.maximum(log_s, -7.0))
  upper = (np.where(k_int == 255, np.inf, y + 1 / 255)[..., None] - m) / s
  lower = (np.where(k_int == 0, -np.inf, y - 1 / 255)[..., None] - m) / s
  # sigmoid(b) - sigmoid(a) = sigmoid(-a) - sigmoid(-b): take the side where both are small,
  # so that the difference does not cancel to 0 in the upper tail.
  upper_tail = lower > 0
  return np.where(upper_tail, special.expit(-lower) - special.expit(-upper),
                  special.expit(upper) - special.expit(lower))


def _ref_pixel_probs(k_int, logits, means, log_s, coeffs):
  """P(pixel) [...] = sum_k softmax(logits)_k prod_c P_k(c), float64."""
  w = special.softmax(logits, axis=-1)
  return np.sum(w * np.prod(_ref_channel_probs(k_int, means, log_s, coeffs), axis=-2), axis=-1)


def _ref_log_prob(k_BHWC, out, C):
  p = _ref_pixel_probs(k_BHWC, *_parse_ref(out, C))
  return np.sum(np.log(p).reshape(p.shape[0], -1), axis=-1)


def _gray(logits, means, log_scales, batch):
  """A one-pixel grayscale distribution with the given K parameters, repeated `batch` times."""
  f = lambda a: jnp.broadcast_to(jnp.asarray(a, jnp.float32), (batch, 1, 1) + np.shape(a))
  return DiscretizedLogisticMixture(f(logits), f(np.asarray(means)[None]),
                                    f(np.asarray(log_scales)[None]))


_jit_log_prob = jax.jit(lambda d, x: d.log_prob(x))


def _gray_pixel_log_probs(logits, means, log_scales):
  """log P(k) for all 256 values of one grayscale pixel, float64 [256]."""
  d = _gray(logits, means, log_scales, 256)
  return np.asarray(_jit_log_prob(d, jnp.asarray(ALL_X).reshape(256, 1, 1, 1)), np.float64)


_R = np.random.default_rng(0)
GRAY_PARAMS = {
    "K1_centre": ([0.0], [0.3], [-2.0]),
    "K1_beyond_edge": ([0.0], [-1.3], [-3.0]),
    "K5_extremes": (_R.normal(size=5), [-1.5, -0.99, 0.0, 0.99, 1.2], [-10.0, -7.0, -4.0, 0.0, 3.0]),
    "K5_random": (_R.normal(size=5) * 2, _R.normal(size=5), _R.uniform(-8, 2, size=5)),
    "K3_huge_scale": ([1.0, 0.0, -1.0], [0.2, 0.9, -0.7], [30.0, -5.0, -1.0]),
}


@pytest.mark.parametrize("name", list(GRAY_PARAMS))
def test_gray_pixel_probabilities_sum_to_one(name):
  """exp(log_prob) over all 256 values of one pixel sums to 1, for tiny, huge and edge parameters."""
  log_p = _gray_pixel_log_probs(*GRAY_PARAMS[name])
  assert np.all(log_p <= 1e-6)
  assert abs(np.exp(log_p).sum() - 1.0) < 1e-5, np.exp(log_p).sum()
  # And each value agrees with the float64 reference (absolute, so tiny bins count too).
  logits, means, log_s = (np.asarray(a, np.float64) for a in GRAY_PARAMS[name])
  ref = _ref_pixel_probs(ALL_K[:, None], logits, means[None], log_s[None], None)
  np.testing.assert_allclose(np.exp(log_p), ref, rtol=1e-4, atol=1e-7)


def test_rgb_pixel_nested_normalisation():
  """Over all 256^3 (r, g, b): sum_b P = P(r, g), sum_g P(r, g) = P(r), sum_r P(r) = 1.

  P(r, g) and P(r) are the float64 mixtures of sum_k pi_k P_k(r) P_k(g | r) and
  sum_k pi_k P_k(r): each conditional must normalise given the actual values
  of the preceding channels.
  """
  K = 2
  rng = np.random.default_rng(1)
  logits = rng.normal(size=K)
  means = rng.uniform(-0.6, 0.6, size=(3, K))
  log_s = rng.uniform(-2.5, -1.0, size=(3, K))
  coeffs = np.tanh(np.array([[1.5, -0.8], [-1.2, 0.4], [0.9, 1.7]]))  # alpha, beta, gamma rows

  chunk = 16
  n = chunk * 65536
  f = lambda a: jnp.asarray(a, jnp.float32)[None, None, None]  # broadcasts against x's batch
  dist = DiscretizedLogisticMixture(f(logits), f(means), f(log_s), f(coeffs))
  gb = np.stack(np.meshgrid(ALL_K, ALL_K, indexing="ij"), -1).reshape(-1, 2)

  # XLA's optimisations (off in the tests, see conftest.py) make these 2^24 evaluations 3x faster.
  @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 3})
  def probs_rg(r0):
    r = r0 + jnp.repeat(jnp.arange(chunk), 65536)
    k = jnp.concatenate([r[:, None], jnp.tile(jnp.asarray(gb), (chunk, 1))], axis=1)
    x = (k.astype(jnp.float32) / 255.0).reshape(n, 1, 1, 3)
    return jnp.exp(dist.log_prob(x)).reshape(chunk, 256, 256)

  p_rgb = np.concatenate([np.asarray(probs_rg(r0), np.float64) for r0 in range(0, 256, chunk)])
  s_rg = p_rgb.sum(axis=2)

  w = special.softmax(logits)
  k_rg = np.stack(np.meshgrid(ALL_K, ALL_K, indexing="ij"), -1)           # [256, 256, 2]
  k_rgb = np.concatenate([k_rg, np.zeros_like(k_rg[..., :1])], axis=-1)   # b unused below
  per_c = _ref_channel_probs(k_rgb, means, log_s, coeffs)                  # [256, 256, 3, K]
  ref_rg = np.sum(w * per_c[..., 0, :] * per_c[..., 1, :], axis=-1)
  ref_r = np.sum(w * per_c[:, 0, 0, :], axis=-1)

  np.testing.assert_allclose(s_rg, ref_rg, rtol=1e-4, atol=1e-9)
  np.testing.assert_allclose(s_rg.sum(axis=1), ref_r, rtol=1e-4, atol=1e-8)
  np.testing.assert_allclose(ref_r.sum(), 1.0, atol=1e-12)  # the reference itself is right
  assert abs(p_rgb.sum() - 1.0) < 1e-5, p_rgb.sum()


@pytest.mark.parametrize("mean, log_s, k", [(-5.0, np.log(0.5), 0), (5.0, np.log(0.5), 255),
                                            (-0.9, np.log(0.1), 0), (0.95, np.log(0.05), 255)])
def test_edge_bins_hold_all_mass_beyond(mean, log_s, k):
  """P(k=0) = CDF(-1 + 1/255) and P(k=255) = 1 - CDF(1 - 1/255), by float64 sigmoids.

  Far-away components (mean -5 or 5) put nearly all mass on the edge bin.
  """
  log_p = _gray_pixel_log_probs([0.0], [mean], [log_s])
  s = np.exp(log_s)
  cdf_upper = special.expit((-1 + 1 / 255 - mean) / s)
  cdf_lower = special.expit((1 - 1 / 255 - mean) / s)
  expected = cdf_upper if k == 0 else 1.0 - cdf_lower
  np.testing.assert_allclose(np.exp(log_p[k]), expected, rtol=1e-5)
  if abs(mean) == 5.0:
    assert log_p[k] > -1e-3
    assert np.exp(log_p).sum() - np.exp(log_p[k]) < 1e-3


def _random_images(rng, shape):
  """uint8 images with many edge values: a quarter 0, a quarter 255, the rest uniform."""
  u = rng.uniform(size=shape)
  k = rng.integers(0, 256, size=shape)
  return np.where(u < 0.25, 0, np.where(u < 0.5, 255, k)).astype(np.uint8)


def _random_out(rng, shape, K, C, mean_scale=0.7, log_s=(-3.0, -0.5)):
  P = 3 * K if C == 1 else 10 * K
  out = rng.normal(size=shape + (P,))
  out[..., K:K + C * K] *= mean_scale
  out[..., K + C * K:K + 2 * C * K] = rng.uniform(*log_s, size=shape + (C * K,))
  return out.astype(np.float32)


@pytest.mark.parametrize("C", [1, 3])
def test_module_round_trip_matches_reference(C):
  """out_channels -> raw output -> DLMLikelihood.apply -> log_prob equals the float64 reference."""
  K = 4
  lik = DLMLikelihood(num_mixtures=K)
  rng = np.random.default_rng(10 + C)
  out = _random_out(rng, (8, 3, 2), K, C)
  assert out.shape[-1] == lik.out_channels(C)
  img = _random_images(rng, (8, 3, 2, C))
  x = lik.model_input(jnp.asarray(img), _keys(0, 8))
  np.testing.assert_allclose(np.asarray(x), img / 255.0, rtol=1e-7, atol=0)
  got = lik.apply({}, jnp.asarray(out)).log_prob(x)
  np.testing.assert_allclose(np.asarray(got), _ref_log_prob(img.astype(np.int64), out, C), rtol=1e-4)


@pytest.mark.parametrize("C", [1, 3])
def test_log_prob_matches_reference_per_pixel(C):
  """One pixel per example (so an error in any one pixel shows), with K = 1 and K = 5."""
  rng = np.random.default_rng(20 + C)
  for K in (1, 5):
    out = _random_out(rng, (300, 1, 1), K, C, mean_scale=0.8, log_s=(-4.0, 3.5))
    img = _random_images(rng, (300, 1, 1, C))
    got = DLMLikelihood(num_mixtures=K).apply({}, jnp.asarray(out)).log_prob(
        jnp.asarray(img / 255.0, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), _ref_log_prob(img.astype(np.int64), out, C),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("C", [1, 3])
def test_extreme_parameters_give_finite_values_and_gradients(C):
  """log-scales -20 (clamped) and +30, means +-50, logits +-1e4, coefficients +-100: all finite."""
  K = 3
  rng = np.random.default_rng(30 + C)
  out = _random_out(rng, (4, 4, 4), K, C)
  out[..., :K] = rng.choice([-1e4, 0.0, 1e4], size=out[..., :K].shape)
  out[..., K:K + C * K] = rng.choice([-50.0, 50.0, 0.3], size=out[..., K:K + C * K].shape)
  out[..., K + C * K:K + 2 * C * K] = rng.choice([-20.0, 30.0, -1.0],
                                                 size=out[..., K + C * K:K + 2 * C * K].shape)
  if C == 3:
    out[..., 7 * K:] = rng.choice([-100.0, 100.0], size=out[..., 7 * K:].shape)
  x = jnp.asarray(_random_images(rng, (4, 4, 4, C)) / 255.0, jnp.float32)
  lik = DLMLikelihood(num_mixtures=K)
  loss = jax.jit(lambda o: jnp.sum(lik.apply({}, o).log_prob(x)))
  value, grad = jax.value_and_grad(loss)(jnp.asarray(out))
  assert np.isfinite(float(value)) and float(value) < 0
  assert np.all(np.isfinite(np.asarray(grad)))
  assert np.any(np.asarray(grad) != 0)


def test_far_tail_edge_bins_match_float64_log_sigmoid():
  """Edge bins of a clamped, far-away component: log CDF computed stably, not log(0)."""
  mean = np.array([50.0, -50.0, 50.0, -50.0])
  k = np.array([0, 255, 255, 0])
  d = DiscretizedLogisticMixture(jnp.zeros((4, 1, 1, 1)),
                                 jnp.asarray(mean, jnp.float32).reshape(4, 1, 1, 1, 1),
                                 jnp.full((4, 1, 1, 1, 1), -20.0))
  got = np.asarray(d.log_prob(jnp.asarray(k / 255.0, jnp.float32).reshape(4, 1, 1, 1)))
  inv_s = np.exp(7.0)  # log-scale -20 is clamped to -7
  z_upper = (-1 + 1 / 255 - mean) * inv_s
  z_lower = (1 - 1 / 255 - mean) * inv_s
  expected = np.where(k == 0, -np.logaddexp(0, -z_upper), -np.logaddexp(0, z_lower))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert np.all(got[:2] < -5e4) and np.all(np.abs(got[2:]) < 1e-6)


def _chi2(counts, probs, min_expected=5.0):
  """Pearson's statistic and degrees of freedom, the sparse tail bins pooled into one."""
  expected = counts.sum() * probs
  big = expected >= min_expected
  obs = np.append(counts[big], counts[~big].sum())
  exp_ = np.append(expected[big], expected[~big].sum())
  keep = exp_ > 0
  return float(np.sum((obs[keep] - exp_[keep])**2 / exp_[keep])), int(keep.sum() - 1)


def test_gray_samples_match_probabilities():
  """A 20k-draw histogram (one key per draw) fits exp(log_prob) by chi-square, and would not fit
  the same components with equal weights or with floor instead of rounding."""
  logits, means, log_s = [1.2, 0.0, -1.0], [-0.97, 0.1, 0.6], [-3.0, -4.5, -2.0]
  n = 20000
  d = _gray(logits, means, log_s, n)
  draws = np.asarray(jax.jit(lambda d, k: d.sample(k))(d, _keys(3, n)), np.float64).ravel()
  k = np.round(draws * 255).astype(int)
  np.testing.assert_allclose(draws, k / 255.0, atol=1e-7)  # values on the grid
  counts = np.bincount(k, minlength=256)
  probs = np.exp(_gray_pixel_log_probs(logits, means, log_s))
  stat, dof = _chi2(counts, probs)
  crit = stats.chi2.ppf(1 - 1e-4, dof)
  assert stat < crit, (stat, dof, crit)
  # The test has power: the histogram rejects an equal-weight mixture and a half-bin shift.
  wrong = np.exp(_gray_pixel_log_probs([0.0, 0.0, 0.0], means, log_s))
  assert _chi2(counts, wrong)[0] > 10 * crit
  shifted = np.exp(_gray_pixel_log_probs(logits, np.asarray(means) - 1 / 255, log_s))
  assert _chi2(counts, shifted)[0] > crit


def test_rgb_samples_follow_coefficients():
  """With K = 1, g regresses on r with slope alpha and b on (r, g) with (beta, gamma); the sample
  mean agrees with `mean`; and draw b depends on keys[b] alone."""
  n = 20000
  raw = np.array([np.arctanh(0.6), np.arctanh(0.45), np.arctanh(-0.8)])
  means = np.array([[0.05], [-0.1], [0.1]])
  log_s = np.log(np.array([[0.15], [0.1], [0.05]]))
  f = lambda a: jnp.broadcast_to(jnp.asarray(a, jnp.float32), (n, 1, 1) + np.shape(a))
  d = DiscretizedLogisticMixture(f([0.0]), f(means), f(log_s), f(np.tanh(raw)[:, None]))
  sample = jax.jit(lambda d, k: d.sample(k))
  keys = _keys(4, n)
  x = np.asarray(sample(d, keys), np.float64).reshape(n, 3)
  y = 2 * x - 1
  ones = np.ones(n)
  slope_g = np.linalg.lstsq(np.stack([ones, y[:, 0]], 1), y[:, 1], rcond=None)[0]
  slope_b = np.linalg.lstsq(np.stack([ones, y[:, 0], y[:, 1]], 1), y[:, 2], rcond=None)[0]
  np.testing.assert_allclose(slope_g[1], 0.6, atol=0.02)
  np.testing.assert_allclose(slope_b[1:], [0.45, -0.8], atol=0.02)
  np.testing.assert_allclose(slope_g[0], -0.1, atol=0.01)
  # The approximate mean (coefficients applied to component means) matches the sample mean here,
  # where clipping is rare.
  mean = np.asarray(d.mean[0, 0, 0], np.float64)
  np.testing.assert_allclose(x.mean(0), mean, atol=4e-3)
  # Per-example keys: the first 7 draws do not depend on the rest of the batch.
  d7 = jax.tree.map(lambda a: a[:7], d)
  np.testing.assert_array_equal(np.asarray(sample(d7, keys[:7])).reshape(7, 3), x[:7].astype(np.float32))


def test_rgb_samples_share_one_component_per_pixel():
  """Two components, one with all channels low and one with all high: each draw has all three
  channels on one side, high with the component's weight (0.7) to within 5 standard errors."""
  n = 20000
  means = np.array([[-0.5, 0.5]] * 3)
  f = lambda a: jnp.asarray(a, jnp.float32)[None, None, None]
  d = DiscretizedLogisticMixture(f(np.log([0.3, 0.7])), f(means), f(np.full((3, 2), -4.0)),
                                 f(np.zeros((3, 2))))
  d = jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape[1:]), d)
  high = np.asarray(jax.jit(lambda d, k: d.sample(k))(d, _keys(5, n))).reshape(n, 3) > 0.5
  assert np.all(high == high[:, :1])
  assert abs(high[:, 0].mean() - 0.7) < 5 * np.sqrt(0.21 / n)


def test_gray_mean_approximates_exact_discrete_mean():
  """Away from the edges, with small scales, `mean` is within 1e-3 of sum_k (k/255) P(k)."""
  logits, means, log_s = [0.5, -0.3, 0.0], [-0.6, 0.1, 0.55], [-3.5, -4.0, -3.0]
  probs = np.exp(_gray_pixel_log_probs(logits, means, log_s))
  exact = np.sum(probs * ALL_K / 255.0)
  got = float(_gray(logits, means, log_s, 1).mean[0, 0, 0, 0])
  assert abs(got - exact) < 1e-3, (got, exact)
  assert abs(exact - 0.5) > 0.01  # the weights matter: not just the midpoint


def test_config_and_channel_errors():
  """from_config reads model.dlm_mixtures; bad counts, channel numbers and output widths are UserErrors."""
  config = ml_collections.ConfigDict({"model": {"dlm_mixtures": 5}})
  lik = DLMLikelihood.from_config(config)
  assert lik.num_mixtures == 5
  assert lik.out_channels(1) == 3 * 5 and lik.out_channels(3) == 10 * 5
  config.model.dlm_mixtures = 0
  with pytest.raises(UserError, match="dlm_mixtures"):
    DLMLikelihood.from_config(config)
  with pytest.raises(UserError, match="channels"):
    lik.out_channels(2)
  with pytest.raises(UserError, match="15.*50"):
    lik.apply({}, jnp.zeros((1, 2, 2, 16)))


def test_dlm_trains_on_the_tfds_cifar10_path_with_mock_data(tmp_path):
  """configs/cifar10_hvae's likelihood on TFDS CIFAR-10 (mock records, no network), with labels:
  a short run trains, lowers the test bits/dim of the 8-bit data, and evaluates."""
  tfds = pytest.importorskip("tensorflow_datasets")
  from conftest import tiny_config
  from vae_jax import trainer
  c = tiny_config(num_train_steps=30, batch_size=8, eval_batch_size=8, evaluators=("loss", "is_nll"),
                  is_nll_k=4, **{"data.name": "cifar10", "data.image_size": 32, "data.channels": 3,
                                 "data.labels": True, "model.num_classes": 10, "model.likelihood": "dlm",
                                 "model.dlm_mixtures": 3, "model.hidden": (64,), "learning_rate": 3e-3})
  with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
    final = trainer.train_and_evaluate(c, tmp_path / "run")
  from vae_jax import metrics_log
  rows = metrics_log.read(tmp_path / "run" / "metrics.jsonl")
  first = next(r for r in rows if r["split"] == "train")
  assert final["num_examples"] == 16 and final["is_nll_k"] == 4
  assert final["bits_per_dim"] < first["bits_per_dim"] - 0.2  # it learns the mock pixels' distribution
  # IS-NLL (k = 4) below the ELBO up to noise, in nats; bits/dim its conversion over 32 x 32 x 3 values.
  assert final["is_nll"] <= final["neg_elbo"] + 3 * final["is_nll_stderr"], final
  np.testing.assert_allclose(final["is_nll_bits_per_dim"], final["is_nll"] / (3072 * math.log(2)), rtol=1e-6)
