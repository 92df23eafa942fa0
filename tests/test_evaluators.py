"""Tests of vae_jax/evaluators: IS-NLL against a closed-form marginal, its k = 1 identity and
tightening with k, chunking and device invariance, its standard error, and active units against numpy.

The model is the linear-Gaussian VAE of test_losses.py (p(z) = N(0, I), p(x|z) = N(Wz + b,
sigma^2 I), a linear encoder), whose log p(x) = log N(x; b, W W^T + sigma^2 I) is exact. With a
non-orthogonal W the true posterior is not diagonal, so the diagonal q leaves a gap that
importance sampling must close.
"""

import functools
import math

import jax
import numpy as np
import pytest

from tests.test_losses import (D, IMAGE_SHAPE, SIGMA, Z, _exact_log_px, _linear_gaussian,
                               _linear_vae_config, _linear_vae_params)
from vae_jax import evaluators, losses, parallel
from vae_jax.config import base_config
from vae_jax import model as model_lib
from vae_jax.data.source import ArraySource
from vae_jax.train_step import example_keys

NUM = 6       # test images; the batch of 8 pads 2
EVAL_KEY = 11


def _data():
  """W, b and NUM uint8 images drawn from the linear-Gaussian model; x = image / 255 exactly."""
  w, b, _, _ = _linear_gaussian(orthogonal=False, seed=3)
  rng = np.random.default_rng(5)
  x = b + rng.normal(size=(NUM, Z)) @ w.T + SIGMA * rng.normal(size=(NUM, D))
  images = np.clip(np.round(255 * x), 0, 255).astype(np.uint8).reshape(NUM, *IMAGE_SHAPE)
  return w, b, images


@pytest.fixture(scope="module")
def linear():
  """(config, model, params near the true posterior, source, exact mean -log p(x))."""
  c = _linear_vae_config()
  model = model_lib.make_model(c, IMAGE_SHAPE)
  init = model_lib.init(model, jax.random.key(0), IMAGE_SHAPE)
  w, b, images = _data()
  params = _linear_vae_params(init, w, b, enc_mean_shift=0.1)  # q: posterior mean + 0.1, true variances
  x = images.reshape(NUM, D).astype(np.float64) / 255.0
  exact = -np.mean([_exact_log_px(w, b, xi) for xi in x])
  return c, model, params, ArraySource(images), exact


def _evaluate(linear, name, *, k=1, chunk=100, backend=("pmap", 1)):
  c, model, params, source, _ = linear
  c = c.copy_and_resolve_references()
  c.is_nll_k, c.is_nll_chunk = k, chunk
  be = parallel.make_backend(*backend)
  setup = evaluators.EvalSetup(model=model, config=c, loss_fn=losses.get_loss_fn(c), backend=be,
                               eval_key=jax.random.key(EVAL_KEY), batch_size=8)
  return evaluators.make_evaluators([name], setup)[name](be.replicate(params), source, 0)


def test_is_nll_converges_to_the_closed_form_marginal(linear):
  """With k = 4000, IS-NLL is within 0.02 nats of the exact -log p(x); the ELBO is well above it."""
  exact = linear[-1]
  got = _evaluate(linear, "is_nll", k=4000, chunk=500)
  assert got["is_nll_num_examples"] == NUM and got["is_nll_k"] == 4000
  elbo = _evaluate(linear, "elbo")
  assert elbo["neg_elbo"] > exact + 0.5  # the gap IS must close
  assert abs(got["is_nll"] - exact) < 0.02, (got["is_nll"], exact)
  # x = image / 255 with no dequantisation: bits/dim is the plain conversion over the D pixels.
  np.testing.assert_allclose(got["is_nll_bits_per_dim"], got["is_nll"] / (D * math.log(2)), rtol=1e-6)


def test_is_nll_with_k_1_is_the_single_sample_elbo_at_the_same_draw(linear):
  """k = 1: -log w of importance sample 0, the draw the ELBO uses, recomputed from the model's groups."""
  c, model, params, source, _ = linear
  got = _evaluate(linear, "is_nll", k=1)
  images = np.stack([source[i] for i in range(NUM)])
  keys = example_keys(jax.random.key(EVAL_KEY), np.arange(NUM))
  x, context, latent_keys = losses.posterior(params, {"image": images}, keys, model=model)
  inf = model_lib.infer(params, context, latent_keys, model=model)
  (group,) = inf.groups
  neg_log_w = -(inf.p_x.log_prob(x) + group.log_p - group.log_q)
  np.testing.assert_allclose(got["is_nll"], float(np.mean(neg_log_w)), rtol=1e-5)
  # The same draw's recon is the elbo evaluator's; only the KL term differs (closed form there).
  recon = _evaluate(linear, "elbo")["recon"]
  np.testing.assert_allclose(recon, float(np.mean(-inf.p_x.log_prob(x))), rtol=1e-5)


def test_is_nll_tightens_with_k_and_stays_above_the_marginal(linear):
  """Averaged over the examples: IS-NLL(1) > IS-NLL(10) > IS-NLL(200) > exact - 0.02."""
  exact = linear[-1]
  values = [_evaluate(linear, "is_nll", k=k, chunk=50)["is_nll"] for k in (1, 10, 200)]
  assert values[0] > values[1] > values[2] > exact - 0.02, (values, exact)


@pytest.mark.parametrize("chunk, backend", [(7, ("pmap", 1)), (50, ("pmap", 2)), (13, ("jit", 4))])
def test_is_nll_does_not_depend_on_chunking_or_devices(linear, chunk, backend):
  """k = 50 in chunks of 7 / 50 / 13 on 1, 2, 4 devices: the same samples, the same figure."""
  reference = _evaluate(linear, "is_nll", k=50, chunk=50)
  got = _evaluate(linear, "is_nll", k=50, chunk=chunk, backend=backend)
  np.testing.assert_allclose(got["is_nll"], reference["is_nll"], atol=2e-5)  # nats; the value is near 0
  np.testing.assert_allclose(got["is_nll_stderr"], reference["is_nll_stderr"], rtol=1e-3)


def test_is_nll_stderr_is_the_standard_error_over_examples(linear):
  """is_nll_stderr = std(per-example IS-NLL, ddof=1) / sqrt(N), from per-example k = 1 values."""
  c, model, params, source, _ = linear
  got = _evaluate(linear, "is_nll", k=1)
  images = np.stack([source[i] for i in range(NUM)])
  keys = example_keys(jax.random.key(EVAL_KEY), np.arange(NUM))
  _, log_w = losses.log_weights(params, {"image": images}, keys, np.arange(1), model=model)
  per_example = -np.asarray(log_w[0], np.float64)
  np.testing.assert_allclose(got["is_nll_stderr"], per_example.std(ddof=1) / math.sqrt(NUM), rtol=1e-3)


def test_is_nll_stderr_survives_a_mean_large_against_the_spread():
  """Colour images score thousands of nats with a spread of a few: per-batch sums of squares about
  the batch mean, combined in float64 with the between-batch term, give numpy's standard error
  (ddof = 1) over all examples. Three padded batches of unequal counts whose means differ."""
  from vae_jax.evaluators import is_nll
  rng = np.random.default_rng(0)
  k = 7
  parts = [6000.0 + 3.0 * rng.standard_normal(7), 6005.0 + 3.0 * rng.standard_normal(5),
           5990.0 + 3.0 * rng.standard_normal(3)]
  parts = [p.astype(np.float32) for p in parts]
  reduce = jax.jit(functools.partial(is_nll._reduce, k=k))
  batches = []
  for nll in parts:
    mask = np.arange(8) < nll.size
    acc = np.zeros(8, np.float32)
    acc[mask] = math.log(k) - nll
    batches.append(jax.device_get(reduce(acc, mask)))
  mean, stderr, n = is_nll.mean_and_stderr(batches)
  exact = (np.float32(math.log(k)) - np.concatenate([math.log(k) - p for p in parts])).astype(np.float64)
  assert n == exact.size == 15
  np.testing.assert_allclose(mean, exact.mean(), rtol=1e-7)
  np.testing.assert_allclose(stderr, exact.std(ddof=1) / math.sqrt(exact.size), rtol=1e-5)


def _active_units(params, images, model, c, threshold):
  c = c.copy_and_resolve_references()
  c.active_units_threshold = threshold
  be = parallel.make_backend("pmap", 2)
  setup = evaluators.EvalSetup(model=model, config=c, loss_fn=losses.get_loss_fn(c), backend=be,
                               eval_key=jax.random.key(0), batch_size=8)
  return evaluators.make_evaluators(["active_units"], setup)["active_units"](
      be.replicate(params), ArraySource(images), 0)


def test_active_units_count_the_units_whose_posterior_mean_varies_more_than_the_threshold():
  """A linear encoder's means mu = x K + c over 50 images (batches of 8 pad 6 zero images): unit u
  is active iff numpy's population variance of mu_u over the 50 exceeds the threshold. Sweeping the
  threshold just below and just above each variance adds or drops exactly that unit; unit 3 is the
  constant 1, whose second moment (1) exceeds every threshold but whose variance (0) does not."""
  c = _linear_vae_config()
  c.model.latent_dim = 4
  model = model_lib.make_model(c, IMAGE_SHAPE)
  params = model_lib.init(model, jax.random.key(0), IMAGE_SHAPE)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (50, *IMAGE_SHAPE), dtype=np.uint8)
  kernel, bias = np.zeros((D, 8), np.float32), np.zeros(8, np.float32)
  kernel[:, 0] = rng.normal(size=D)
  kernel[:, 1] = rng.normal(size=D) * 0.5
  kernel[:, 2] = rng.normal(size=D) * 0.02
  bias[:3], bias[3] = (0.3, -0.2, 0.5), 1.0
  params = dict(params, encoder={"Dense_0": {"kernel": kernel, "bias": bias}})
  x = images.reshape(50, D).astype(np.float64) / 255.0
  variances = np.var(x @ kernel[:, :4].astype(np.float64) + bias[:4], axis=0)
  assert variances[3] == 0.0 and np.all(np.diff(variances[:3]) < 0)  # distinct, decreasing
  for u in range(3):
    below = _active_units(params, images, model, c, variances[u] * (1 - 1e-3))["active_units"]
    above = _active_units(params, images, model, c, variances[u] * (1 + 1e-3))["active_units"]
    assert (below, above) == (u + 1, u), (u, variances)
  assert _active_units(params, images, model, c, 1e-9)["active_units"] == 3  # not the constant unit


def test_unknown_evaluator_lists_the_valid_names(linear):
  from vae_jax.errors import UserError
  with pytest.raises(UserError, match="active_units, class_coverage, elbo, fid, is_nll, kid, loss, precision_recall"):
    _evaluate(linear, "is_nl")


def test_is_nll_num_examples_takes_the_first_examples(linear):
  """is_nll_num_examples = 3: the mean over the first 3 examples, which k = 1 per-example values give."""
  c, model, params, source, _ = linear
  c3 = c.copy_and_resolve_references()
  c3.is_nll_num_examples = 3
  got = _evaluate((c3, model, params, source, None), "is_nll", k=1)
  images = np.stack([source[i] for i in range(3)])
  keys = example_keys(jax.random.key(EVAL_KEY), np.arange(3))
  _, log_w = losses.log_weights(params, {"image": images}, keys, np.arange(1), model=model)
  assert got["is_nll_num_examples"] == 3
  np.testing.assert_allclose(got["is_nll"], -float(np.mean(log_w[0])), rtol=1e-5, atol=1e-5)


def _gauss_log_density(z, dist):
  """sum_d log N(z_d; mean_d, exp(logvar_d)), float64."""
  mean, logvar = np.asarray(dist.mean, np.float64), np.asarray(dist.logvar, np.float64)
  z = np.asarray(z, np.float64)
  return np.sum(-0.5 * (np.log(2 * np.pi) + logvar + (z - mean) ** 2 / np.exp(logvar)), axis=-1)


def _two_layer_ladder():
  """(config, model, params): a ladder with z_1 of 5 and z_2 of 3 units on 4x4 images, its initial
  weights doubled so that the posteriors differ clearly between images."""
  c = base_config()
  c.model.name = "ladder"
  c.model.latent_dims, c.model.hidden, c.model.layers_per_latent = (5, 3), (16, 8), 1
  c.data.image_size = 4
  model = model_lib.make_model(c, IMAGE_SHAPE)
  return c, model, jax.tree.map(lambda a: 2.0 * a, model_lib.init(model, jax.random.key(0), IMAGE_SHAPE))


def test_is_nll_k_1_of_a_two_layer_ladder_is_its_log_weight_recomputed_from_the_nets():
  """Two latent groups: IS-NLL (k = 1) is the mean over examples of -[log p(x|z_1) + log p(z_2)
  + log p(z_1|z_2) - log q(z_1|x) - log q(z_2|z_1)] at the evaluator's draws, each density
  recomputed from the networks (numpy Bernoulli and Gaussian formulas); k = 64 lies below it."""
  c, model, params = _two_layer_ladder()
  images = np.random.default_rng(1).integers(0, 256, (NUM, *IMAGE_SHAPE), dtype=np.uint8)
  be = parallel.make_backend("pmap", 1)

  def is_nll(k):
    c.is_nll_k, c.is_nll_chunk = k, 16
    setup = evaluators.EvalSetup(model=model, config=c, loss_fn=losses.get_loss_fn(c), backend=be,
                                 eval_key=jax.random.key(EVAL_KEY), batch_size=8)
    return evaluators.make_evaluators(["is_nll"], setup)["is_nll"](be.replicate(params), ArraySource(images), 0)

  keys = example_keys(jax.random.key(EVAL_KEY), np.arange(NUM))
  x, q_1, latent_keys = losses.posterior(params, {"image": images}, keys, model=model)
  top, bottom = model_lib.infer(params, q_1, latent_keys, model=model).groups
  net = lambda name, i, z: model.apply({"params": params}, z, method=lambda m, z: getattr(m, name)[i](z))
  logits = np.asarray(model.apply({"params": params}, bottom.z, method=lambda m, z: m.x_net(z)), np.float64)
  x64 = np.asarray(x, np.float64).reshape(NUM, -1)
  logits = logits.reshape(NUM, -1)
  log_px = np.sum(x64 * logits - np.logaddexp(0.0, logits), axis=-1)
  z2 = np.asarray(top.z, np.float64)
  log_pz2 = np.sum(-0.5 * (np.log(2 * np.pi) + z2**2), axis=-1)
  log_w = (log_px + log_pz2 + _gauss_log_density(bottom.z, net("p_nets", 0, top.z))
           - _gauss_log_density(bottom.z, q_1) - _gauss_log_density(top.z, net("q_nets", 1, bottom.z)))
  one = is_nll(1)
  np.testing.assert_allclose(one["is_nll"], -log_w.mean(), rtol=1e-5)
  assert is_nll(64)["is_nll"] < one["is_nll"]


def test_active_units_of_each_ladder_group_match_numpy_variances_of_the_mean_path():
  """Per group (generative order: 0 = z_2, 1 = z_1): units whose posterior mean on the zero-noise
  path, z_1 = E q(z_1|x) and z_2 = E q(z_2|z_1), varies over the images more than a threshold set
  midway between two of the 8 units' numpy variances."""
  c, model, params = _two_layer_ladder()
  images = np.random.default_rng(2).integers(0, 256, (40, *IMAGE_SHAPE), dtype=np.uint8)
  keys = example_keys(jax.random.key(0), np.arange(40))
  _, q_1, _ = losses.posterior(params, {"image": images}, keys, model=model)
  q_2 = model.apply({"params": params}, q_1.mean, method=lambda m, z: m.q_nets[1](z))
  var_1, var_2 = (np.var(np.asarray(d.mean, np.float64), axis=0) for d in (q_1, q_2))
  ordered = np.sort(np.concatenate([var_1, var_2]))
  threshold = float(np.sqrt(ordered[3] * ordered[4]))  # 4 of the 8 units above it
  assert ordered[4] / ordered[3] > 1.01
  got = _active_units(params, images, model, c, threshold)
  want = [int(np.sum(var_2 > threshold)), int(np.sum(var_1 > threshold))]
  assert 0 < want[0] < 3  # units on both sides of the threshold in both groups (3 + 5 units)
  assert [got["active_units_g0"], got["active_units_g1"]] == want and got["active_units"] == 4
