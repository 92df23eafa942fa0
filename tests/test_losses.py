"""Tests of vae_jax/losses.py and the likelihoods' input transforms and bits/dim.

The headline tests check the ELBO against the exact marginal likelihood of a
linear-Gaussian model, p(z) = N(0, I), p(x|z) = N(Wz + b, sigma^2 I), whose
log p(x) = log N(x; b, W W^T + sigma^2 I) and posterior
N(S W^T (x - b) / sigma^2, S), S = (I + W^T W / sigma^2)^-1, are known in
closed form: ELBO(q) = log p(x) - KL(q || p(z|x)) <= log p(x), with equality
at the true posterior.
"""

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax import losses
from vae_jax import model as model_lib
import types

from vae_jax.likelihoods import make_likelihood
from vae_jax.config import base_config
from vae_jax.distributions import DiagGaussian, Gaussian
from vae_jax.errors import UserError

# The linear-Gaussian model: images 4x4x1 (D = 16), latents Z = 3.
IMAGE_SHAPE = (4, 4, 1)
D, Z = 16, 3
SIGMA = 0.1


def _linear_gaussian(orthogonal=True, seed=0, mix=None):
  """(W [D, Z], b [D], uint8 image [4, 4, 1], x [D] = image / 255), x drawn from the model.

  Non-orthogonal W = 0.3 A (A standard normal), times `mix` [Z, Z] when given (correlated columns)."""
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(D, Z))
  if orthogonal:  # orthogonal columns: W^T W diagonal, so the true posterior is diagonal
    q, _ = np.linalg.qr(a)
    w = q * np.array([1.0, 0.6, 0.3])
  else:
    w = 0.3 * a if mix is None else 0.3 * a @ mix
  b = rng.uniform(0.3, 0.7, size=D)
  x = b + w @ rng.normal(size=Z) + SIGMA * rng.normal(size=D)
  image = np.clip(np.round(255 * x), 0, 255).astype(np.uint8)
  # Round-trip W and b through float32 so the library's float32 model is exactly this model.
  w, b = w.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
  return w, b, image.reshape(IMAGE_SHAPE), image.astype(np.float64) / 255.0


def _exact_log_px(w, b, x):
  return stats.multivariate_normal.logpdf(x, b, w @ w.T + SIGMA**2 * np.eye(D))


def _true_posterior(w, b, x):
  """Mean [Z] and full covariance [Z, Z] of p(z | x)."""
  cov = np.linalg.inv(np.eye(Z) + w.T @ w / SIGMA**2)
  return cov @ w.T @ (x - b) / SIGMA**2, cov


def _expected_log_lik(w, b, x, m, s2):
  """E_q[log N(x; W z + b, sigma^2 I)] for q = N(m, diag s2), in closed form."""
  r = x - w @ m - b
  return -0.5 * (D * math.log(2 * math.pi * SIGMA**2)
                 + (r @ r + np.trace(w.T @ w @ np.diag(s2))) / SIGMA**2)


def _kl_to_posterior(m, s2, post_m, post_cov):
  """KL(N(m, diag s2) || N(post_m, post_cov)), numpy, full covariance."""
  inv = np.linalg.inv(post_cov)
  d = post_m - m
  return 0.5 * (np.trace(inv @ np.diag(s2)) + d @ inv @ d - Z
                + np.linalg.slogdet(post_cov)[1] - np.sum(np.log(s2)))


def _library_kl(m, s2):
  return float(DiagGaussian(jnp.asarray(m, jnp.float32)[None],
                            jnp.asarray(np.log(s2), jnp.float32)[None]).kl_standard_normal()[0])


def test_monte_carlo_expected_log_lik_with_library_sampler():
  """Averaging Gaussian.log_prob over DiagGaussian.sample draws gives the closed-form E_q log p(x|z)."""
  w, b, _, x = _linear_gaussian()
  post_m, post_cov = _true_posterior(w, b, x)
  n = 50_000
  for m, s2 in [(post_m, np.diag(post_cov)), (post_m + 0.05, 2.0 * np.diag(post_cov))]:
    q = DiagGaussian(jnp.broadcast_to(jnp.asarray(m, jnp.float32), (n, Z)),
                     jnp.broadcast_to(jnp.asarray(np.log(s2), jnp.float32), (n, Z)))
    z = q.sample(jax.random.split(jax.random.key(5), n))
    loc = (z @ jnp.asarray(w.T, jnp.float32) + jnp.asarray(b, jnp.float32)).reshape(n, *IMAGE_SHAPE)
    p = Gaussian(loc, jnp.full((1,), math.log(SIGMA), jnp.float32))
    ll = np.asarray(p.log_prob(jnp.broadcast_to(jnp.asarray(x, jnp.float32).reshape(IMAGE_SHAPE),
                                                (n, *IMAGE_SHAPE))), np.float64)
    se = ll.std(ddof=1) / math.sqrt(n)
    assert abs(ll.mean() - _expected_log_lik(w, b, x, m, s2)) < 5 * se + 1e-3


def _linear_vae_config():
  c = base_config()
  c.model.encoder = c.model.decoder = "mlp"
  c.model.hidden = ()  # a single Dense layer each way: linear
  c.model.latent_dim = Z
  c.model.likelihood = "gaussian"
  c.model.gaussian_std = SIGMA
  c.model.learn_std = False
  c.data.dequantize = False  # x = image / 255 exactly
  return c


@pytest.fixture(scope="module")
def linear_vae():
  """(model, config, initial params, f) with f(params, batch, keys) -> (elbo_terms, elbo_loss, q), jitted once."""
  c = _linear_vae_config()
  model = model_lib.make_model(c, IMAGE_SHAPE)

  @jax.jit
  def f(params, batch, keys):
    terms = losses.elbo_terms(params, batch, keys, model=model, config=c)
    loss = losses.elbo_loss(params, batch, keys, 0, model=model, config=c)
    q = model_lib.encode(params, batch["image"][:1].astype(jnp.float32) / 255.0, model=model)
    return terms, loss, q
  return model, c, model_lib.init(model, jax.random.key(0), IMAGE_SHAPE), f


def _linear_vae_params(init_params, w, b, enc_mean_shift=0.0, enc_logvar_shift=0.0):
  """Params making the Dense decoder x = W z + b and the Dense encoder output the true posterior.

  The encoder's mean and log-variance are then shifted by the given constants.
  """
  cov = np.linalg.inv(np.eye(Z) + w.T @ w / SIGMA**2)
  gain = w @ cov / SIGMA**2  # [D, Z]: posterior mean = (x - b) @ gain
  enc_kernel = np.concatenate([gain, np.zeros((D, Z))], axis=1)
  enc_bias = np.concatenate([-b @ gain + enc_mean_shift,
                             np.log(np.diag(cov)) + enc_logvar_shift])
  new = {
      "encoder": {"Dense_0": {"kernel": enc_kernel, "bias": enc_bias}},
      "decoder": {"Dense_0": {"kernel": w.T, "bias": b}},
  }
  assert jax.tree.map(jnp.shape, init_params) == jax.tree.map(np.shape, new)
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), new)


@pytest.mark.parametrize("mean_shift, logvar_shift", [(0.0, 0.0), (0.15, 0.0), (0.0, 1.0)])
def test_library_elbo_matches_linear_gaussian_exact_likelihood(linear_vae, mean_shift, logvar_shift):
  """losses.elbo_terms on a linear VAE: at the true posterior the mean -ELBO is -log p(x); off it, -ELBO(q).

  The same x is repeated across a batch of 4096 examples with different per-example keys;
  the tolerance is 5 standard errors of the mean plus float32 slack.
  """
  model, config, init_params, f = linear_vae
  w, b, image, x = _linear_gaussian()
  params = _linear_vae_params(init_params, w, b, mean_shift, logvar_shift)
  n = 4096
  batch = {"image": jnp.broadcast_to(jnp.asarray(image), (n, *IMAGE_SHAPE))}
  keys = jax.random.split(jax.random.key(7), n)
  terms, (loss, metrics), q = f(params, batch, keys)

  # The encoder really computes the intended q(z|x).
  post_m, post_cov = _true_posterior(w, b, x)
  m, s2 = post_m + mean_shift, np.diag(post_cov) * math.exp(logvar_shift)
  np.testing.assert_allclose(q.mean[0], m, atol=1e-4)
  np.testing.assert_allclose(np.exp(q.logvar[0]), s2, rtol=1e-4)

  neg_elbo = np.asarray(terms["neg_elbo"], np.float64)
  se = neg_elbo.std(ddof=1) / math.sqrt(n)
  log_px = _exact_log_px(w, b, x)
  expected_neg_elbo = -(_expected_log_lik(w, b, x, m, s2) - _library_kl(m, s2))
  assert abs(neg_elbo.mean() - expected_neg_elbo) < 5 * se + 1e-3, (neg_elbo.mean(), expected_neg_elbo, se)
  # KL is deterministic given x; it is the same for every example.
  np.testing.assert_allclose(terms["kl"], _library_kl(m, s2), rtol=1e-5)
  if mean_shift == logvar_shift == 0.0:
    assert abs(neg_elbo.mean() + log_px) < 5 * se + 1e-3, (neg_elbo.mean(), -log_px, se)
  else:  # a wrong q pays KL(q || p(z|x)) nats, far more than the Monte Carlo error
    gap = _kl_to_posterior(m, s2, post_m, post_cov)
    assert gap > 10 * se
    assert neg_elbo.mean() > -log_px + gap - 5 * se - 1e-3

  # The registered loss reports the batch mean of the same terms; no dequantisation: no offset.
  np.testing.assert_allclose(loss, neg_elbo.mean(), rtol=1e-5)
  np.testing.assert_allclose(metrics["bits_per_dim"], loss / (D * math.log(2)), rtol=1e-5)


@pytest.mark.parametrize("variances", ["marginal", "mean_field"])
def test_library_elbo_gap_is_the_kl_to_the_non_diagonal_true_posterior(linear_vae, variances):
  """A non-orthogonal W: p(z|x) has a full covariance no diagonal q matches. losses.elbo_terms with
  the encoder at the posterior mean and diagonal variances (the posterior's marginals, or the
  mean-field optimum 1 / diag(precision)) gives -ELBO = -log p(x) + KL(q || p(z|x)), the KL in
  numpy with the full covariance (5 SE over 4096 draws); the mean-field gap is the smaller."""
  model, config, init_params, f = linear_vae
  mix = np.array([[1.0, 0.9, 0.8], [0.0, 0.3, 0.2], [0.0, 0.0, 0.2]])  # columns nearly parallel
  w, b, image, x = _linear_gaussian(orthogonal=False, seed=3, mix=mix)
  params = _linear_vae_params(init_params, w, b)
  post_m, post_cov = _true_posterior(w, b, x)
  s2 = np.diag(post_cov) if variances == "marginal" else 1.0 / np.diag(np.linalg.inv(post_cov))
  enc = params["encoder"]["Dense_0"]
  params["encoder"]["Dense_0"] = dict(enc, bias=enc["bias"].at[Z:].set(np.log(s2).astype(np.float32)))
  n = 4096
  batch = {"image": jnp.broadcast_to(jnp.asarray(image), (n, *IMAGE_SHAPE))}
  terms, _, q = f(params, batch, jax.random.split(jax.random.key(8), n))
  np.testing.assert_allclose(q.mean[0], post_m, atol=1e-4)
  neg_elbo = np.asarray(terms["neg_elbo"], np.float64)
  se = neg_elbo.std(ddof=1) / math.sqrt(n)
  gap = _kl_to_posterior(post_m, s2, post_m, post_cov)
  assert gap > 20 * se
  assert abs(neg_elbo.mean() - (-_exact_log_px(w, b, x) + gap)) < 5 * se + 1e-3, (neg_elbo.mean(), gap, se)
  if variances == "mean_field":  # the best diagonal q: a smaller gap than the marginals' (3.4 vs 49 nats)
    assert gap < _kl_to_posterior(post_m, np.diag(post_cov), post_m, post_cov)


# --- Loss metrics, beta, warm-up, bits/dim -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
  """A tiny Bernoulli MLP VAE on 8x8 images, config with beta_elbo (beta 3, warm-up 10), and a batch of 4.

  Returns (run, (model, params, config, images)); `run(step)` gives (elbo_loss, beta_elbo_loss,
  elbo_terms) at fixed keys, jitted once.
  """
  c = base_config()
  c.model.hidden = (16,)
  c.model.latent_dim = 2
  c.data.image_size = 8
  c.loss = "beta_elbo"
  c.beta = 3.0
  c.kl_warmup_steps = 10
  model = model_lib.make_model(c, (8, 8, 1))
  params = jax.jit(lambda k: model_lib.init(model, k, (8, 8, 1)))(jax.random.key(0))
  images = np.random.default_rng(0).integers(0, 256, size=(4, 8, 8, 1), dtype=np.uint8)
  batch = {"image": jnp.asarray(images)}
  keys = jax.random.split(jax.random.key(1), 4)
  beta_loss_fn = losses.get_loss_fn(c)

  @jax.jit
  def run(step):
    return (losses.elbo_loss(params, batch, keys, step, model=model, config=c),
            beta_loss_fn(params, batch, keys, step, model=model, config=c),
            losses.elbo_terms(params, batch, keys, model=model, config=c))
  return run, (model, params, c, images)


def test_elbo_loss_matches_an_independent_monte_carlo_estimate(tiny):
  """E over draws of the library's per-example -ELBO = a numpy estimate of the same expectation.

  Numpy draws its own x ~ Bern(image / 255) and z ~ q(z|x) from the encoder's (mean, logvar),
  and computes recon = -sum [x l - log(1 + e^l)] from the decoder's logits and the closed-form
  KL = 1/2 sum [m^2 + s^2 - 1 - log s^2]: only the networks are shared, not the formulas or keys.
  """
  _, (model, params, c, images) = tiny
  n = 2048  # draws per image
  batch = {"image": jnp.asarray(np.repeat(images, n, axis=0))}  # image i at rows i*n ... (i+1)*n - 1
  keys = jax.random.split(jax.random.key(1), 4 * n)
  loss, m = jax.jit(lambda b, k: losses.elbo_loss(params, b, k, 0, model=model, config=c))(batch, keys)
  terms = jax.jit(lambda b, k: losses.elbo_terms(params, b, k, model=model))(batch, keys)
  lib = {k: np.asarray(terms[k], np.float64).reshape(4, n) for k in ("recon", "kl", "neg_elbo")}
  np.testing.assert_allclose(loss, np.mean(terms["neg_elbo"]), rtol=1e-5)  # the loss: mean over the batch
  np.testing.assert_allclose(m["kl"], np.mean(terms["kl"]), rtol=1e-5)
  np.testing.assert_allclose(lib["neg_elbo"], lib["recon"] + lib["kl"], rtol=1e-5)
  rng = np.random.default_rng(0)
  p_on = np.asarray(images, np.float64).reshape(4, -1) / 255.0
  for i in range(4):
    x = (rng.uniform(size=(n, 64)) < p_on[i]).astype(np.float32)
    q = model_lib.encode(params, jnp.asarray(x.reshape(n, 8, 8, 1)), model=model)
    mean, logvar = np.asarray(q.mean, np.float64), np.asarray(q.logvar, np.float64)
    kl = 0.5 * np.sum(mean**2 + np.exp(logvar) - 1.0 - logvar, axis=1)
    z = mean + np.exp(0.5 * logvar) * rng.normal(size=mean.shape)
    l = np.asarray(model_lib.decode(params, jnp.asarray(z, jnp.float32), model=model).logits,
                   np.float64).reshape(n, -1)
    recon = -np.sum(x * l - np.logaddexp(0.0, l), axis=1)
    for k, ref in (("recon", recon), ("kl", kl), ("neg_elbo", recon + kl)):
      got = lib[k][i]
      se = math.sqrt(got.var(ddof=1) / got.size + ref.var(ddof=1) / ref.size)
      assert abs(got.mean() - ref.mean()) < 5 * se + 1e-4, (k, i, got.mean(), ref.mean(), se)


@pytest.mark.parametrize("step, beta_t", [(0, 0.0), (5, 1.5), (10, 3.0), (25, 3.0)])
def test_beta_elbo_loss_is_recon_plus_beta_t_kl(tiny, step, beta_t):
  """beta_elbo = recon + beta_t kl with beta_t = 3 min(1, step / 10); neg_elbo stays the beta = 1 bound."""
  (_, m_elbo), (loss, m), _ = tiny[0](step)
  np.testing.assert_allclose(m["beta"], beta_t, rtol=1e-6)
  np.testing.assert_allclose(loss, m["recon"] + beta_t * m["kl"], rtol=1e-6)
  np.testing.assert_allclose(m["neg_elbo"], m["recon"] + m["kl"], rtol=1e-6)
  np.testing.assert_allclose(m["kl"], m_elbo["kl"], rtol=1e-6)
  np.testing.assert_allclose(m["recon"], m_elbo["recon"], rtol=1e-6)


def test_kl_weight_linear_warmup_then_flat():
  """kl_weight rises linearly from 0 to beta over warmup_steps and then stays at beta; no warm-up is flat."""
  steps = np.arange(0, 30)
  got = np.asarray(jax.vmap(lambda s: losses.kl_weight(s, beta=2.0, warmup_steps=12))(steps))
  np.testing.assert_allclose(got, 2.0 * np.minimum(1.0, steps / 12.0), rtol=1e-6)
  assert np.all(np.diff(got[:13]) > 0) and np.all(got[12:] == 2.0)
  np.testing.assert_allclose(losses.kl_weight(0, beta=0.5, warmup_steps=0), 0.5)
  np.testing.assert_allclose(losses.kl_weight(100, beta=0.5, warmup_steps=0), 0.5)


def _bits(nats, d, c):
  return make_likelihood(c).nats_to_bits_per_dim(nats, d)


def _model_input(images, keys, c):
  return make_likelihood(c).model_input(images, keys)


def test_bits_per_dim_conversions():
  """Bernoulli: nats / (D ln 2); Gaussian with dequantisation: (nats + D ln 256) / (D ln 2)."""
  c = base_config()
  d = 784
  nats = jnp.asarray(543.21)
  c.model.likelihood = "bernoulli"
  np.testing.assert_allclose(_bits(nats, d, c), 543.21 / (d * math.log(2)),
                             rtol=1e-6)
  c.model.likelihood = "gaussian"
  c.data.dequantize = True
  np.testing.assert_allclose(_bits(nats, d, c),
                             (543.21 + d * math.log(256)) / (d * math.log(2)), rtol=1e-6)
  # A uniform density on [0, 1]^D (0 nats) is exactly 8 bits per 8-bit dimension.
  np.testing.assert_allclose(_bits(jnp.asarray(0.0), d, c), 8.0, rtol=1e-6)
  c.data.dequantize = False
  np.testing.assert_allclose(_bits(nats, d, c), 543.21 / (d * math.log(2)),
                             rtol=1e-6)


def test_elbo_metrics_bits_per_dim_includes_dequantisation_offset():
  """elbo_metrics on a dequantised Gaussian model reports (neg_elbo + D ln 256) / (D ln 2), D = H W C."""
  c = base_config()
  c.model.likelihood = "gaussian"
  c.data.dequantize = True
  terms = {"recon": jnp.array([100.0, 120.0]), "kl": jnp.array([5.0, 7.0])}
  terms["neg_elbo"] = terms["recon"] + terms["kl"]
  batch = {"image": jnp.zeros((2, 4, 4, 3), jnp.uint8)}
  m = losses.elbo_metrics(terms, batch, model=types.SimpleNamespace(likelihood=make_likelihood(c)))
  np.testing.assert_allclose(m["neg_elbo"], 116.0, rtol=1e-6)
  np.testing.assert_allclose(m["elbo"], -116.0, rtol=1e-6)
  np.testing.assert_allclose(m["bits_per_dim"], (116.0 + 48 * math.log(256)) / (48 * math.log(2)), rtol=1e-6)


# --- Loss lookup -------------------------------------------------------------------------------


def test_unknown_loss_name_lists_valid_names():
  """An unknown loss name is a UserError naming the valid losses."""
  c = base_config()
  c.loss = "elob"
  with pytest.raises(UserError) as e:
    losses.get_loss_fn(c)
  assert "'elob'" in str(e.value) and "elbo" in str(e.value) and "beta_elbo" in str(e.value)


def test_registered_losses_are_found():
  """'elbo' and 'beta_elbo' resolve to the library's functions."""
  c = base_config()
  c.loss = "elbo"
  assert losses.get_loss_fn(c) is losses.elbo_loss
  c.loss = "beta_elbo"
  assert losses.get_loss_fn(c) is losses.beta_elbo_loss


def test_custom_loss_from_import_path(tmp_path, monkeypatch):
  """A loss named 'module:function' is imported from the user's module and returned as is."""
  (tmp_path / "vae_jax_test_my_losses.py").write_text(
      "def my_loss(params, batch, rng, step, *, model, config):\n"
      "  return 2.0 * step, {'step': step}\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.delitem(sys.modules, "vae_jax_test_my_losses", raising=False)
  c = base_config()
  c.loss = "vae_jax_test_my_losses:my_loss"
  fn = losses.get_loss_fn(c)
  assert fn is sys.modules["vae_jax_test_my_losses"].my_loss
  assert fn(None, None, None, 3, model=None, config=c) == (6.0, {"step": 3})


@pytest.mark.parametrize("name", ["vae_jax_no_such_module_xyz:fn", "os:nothing_here", "os:sep"])
def test_bad_custom_loss_paths_are_user_errors(name):
  """A missing module, a missing attribute or a non-callable attribute is a UserError naming it."""
  c = base_config()
  c.loss = name
  with pytest.raises(UserError) as e:
    losses.get_loss_fn(c)
  assert name.split(":")[0] in str(e.value) or name in str(e.value)


# --- Input transforms ------------------------------------------------------------------------------------

LEVELS = np.array([0, 1, 51, 128, 200, 254, 255], np.uint8)


def test_dynamic_binarisation_probability():
  """With binarize, P(x = 1) = intensity / 255 (Monte Carlo, 5 standard errors); 0 and 255 are exact."""
  c = base_config()
  c.model.likelihood = "bernoulli"
  c.data.binarize = True
  n = 20_000
  images = jnp.broadcast_to(jnp.asarray(LEVELS).reshape(1, 1, -1, 1), (n, 1, LEVELS.size, 1))
  x = np.asarray(_model_input(images, jax.random.split(jax.random.key(0), n), c))
  assert set(np.unique(x)) <= {0.0, 1.0}
  freq = x.reshape(n, -1).mean(0)
  p = LEVELS / 255.0
  se = np.sqrt(p * (1 - p) / n)
  assert np.all(np.abs(freq - p) <= 5 * se), (freq, p)
  assert freq[0] == 0.0 and freq[-1] == 1.0


def test_no_binarisation_or_dequantisation_is_intensity_over_255():
  """Without binarize (Bernoulli) or dequantize (Gaussian), x = intensity / 255 exactly."""
  images = jnp.asarray(LEVELS).reshape(1, 1, -1, 1)
  keys = jax.random.split(jax.random.key(0), 1)
  for likelihood, flag in (("bernoulli", "binarize"), ("gaussian", "dequantize")):
    c = base_config()
    c.model.likelihood = likelihood
    c.data[flag] = False
    x = np.asarray(_model_input(images, keys, c)).ravel()
    np.testing.assert_allclose(x, LEVELS / np.float32(255.0), rtol=1e-7)


def test_dequantisation_stays_in_bin_at_the_largest_uniform_draw(monkeypatch):
  """u = 1 - 2^-23, the largest float32 below 1: k + u rounds to k + 1 in float32 for k >= 2, yet
  x must stay below (k + 1) / 256, within a float32 step of it."""
  from vae_jax import example_rng
  c = base_config()
  c.model.likelihood = "gaussian"
  c.data.dequantize = True
  monkeypatch.setattr(example_rng, "uniform", lambda keys, shape, stream=0: jnp.full(
      (keys.shape[0], *shape), np.float32(1.0) - np.float32(2.0 ** -23)))
  k = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  x = np.asarray(_model_input(jnp.asarray(k), jax.random.split(jax.random.key(0), 1), c), np.float64)
  upper = (k.astype(np.float64) + 1) / 256
  assert np.all(x < upper) and np.all(upper - x <= upper * 2.0 ** -23)


def test_dequantisation_stays_in_bin_and_is_uniform():
  """Dequantised x = (k + u) / 256 lies in bin k, with u ~ U[0, 1): mean 1/2, variance 1/12 (5 SE)."""
  c = base_config()
  c.model.likelihood = "gaussian"
  c.data.dequantize = True
  n = 256
  k = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  images = jnp.broadcast_to(jnp.asarray(k), (n, 16, 16, 1))
  x = np.asarray(_model_input(images, jax.random.split(jax.random.key(0), n), c), np.float64)
  kf = k.astype(np.float64)
  assert np.all(x >= kf / 256) and np.all(x < (kf + 1) / 256)
  u = (x * 256 - kf).ravel()
  se = math.sqrt(1 / 12 / u.size)
  assert abs(u.mean() - 0.5) < 5 * se
  # SE of a sample variance: sqrt((mu4 - sigma^4) / n) = sqrt((1/80 - 1/144) / n) = sqrt(1 / (180 n)).
  assert abs(u.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / u.size)
