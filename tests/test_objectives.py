"""Tests of the objectives in vae_jax/losses.py beyond the single-sample ELBO: IWAE and free bits.

IWAE's gradient is checked against an independent jnp computation of the bound from the raw
parameters of a linear-Gaussian VAE (sharing only the noise words), and its training step
against the pmap / jit / one-device parity the ELBO already has.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.test_losses import IMAGE_SHAPE, SIGMA, Z, _linear_vae_config
from tests.test_train_step import _l2_norm
from vae_jax import example_rng, losses, parallel
from vae_jax import model as model_lib
from vae_jax import train_step as ts
from vae_jax.config import base_config

B = 4


def _batch(seed=0, n=B):
  return {"image": jnp.asarray(np.random.default_rng(seed).integers(0, 256, (n, *IMAGE_SHAPE), np.uint8))}


@pytest.fixture(scope="module")
def linear():
  c = _linear_vae_config()
  c.loss = "iwae"
  model = model_lib.make_model(c, IMAGE_SHAPE)
  params = model_lib.init(model, jax.random.key(3), IMAGE_SHAPE)
  # A less trivial encoder than the init: larger weights, negative log-variances.
  params = jax.tree.map(lambda a: a * 3.0, params)
  return c, model, params


def _independent_log_w(params, images, keys_B, k):
  """log w [k, B] = log p(x|z_s) + log p(z_s) - log q(z_s|x) for the linear VAE, from the raw params."""
  x = images.reshape(images.shape[0], -1).astype(jnp.float32) / 255.0
  enc, dec = params["encoder"]["Dense_0"], params["decoder"]["Dense_0"]
  h = x @ enc["kernel"] + enc["bias"]
  mean, logvar = h[:, :Z], h[:, Z:]
  latent_keys = jax.vmap(lambda kk: jax.random.split(kk, 2))(keys_B)[:, 1]
  log_ws = []
  for s in range(k):
    eps = example_rng.normal(latent_keys, (Z,), stream=example_rng.latent_stream(s, 0))
    z = mean + jnp.exp(0.5 * logvar) * eps
    log_q = jnp.sum(-0.5 * (math.log(2 * math.pi) + logvar + eps**2), axis=-1)
    log_pz = jnp.sum(-0.5 * (math.log(2 * math.pi) + z**2), axis=-1)
    loc = z @ dec["kernel"] + dec["bias"]
    log_px = jnp.sum(-0.5 * (math.log(2 * math.pi * SIGMA**2) + (x - loc) ** 2 / SIGMA**2), axis=-1)
    log_ws.append(log_px + log_pz - log_q)
  return jnp.stack(log_ws)


def _independent_iwae(params, images, keys_B, k):
  """-mean_b [logsumexp_s log w_bs - log k]."""
  return -jnp.mean(jax.nn.logsumexp(_independent_log_w(params, images, keys_B, k), axis=0) - math.log(k))


@pytest.mark.parametrize("k", [1, 5])
def test_iwae_loss_and_gradient_match_an_independent_computation(linear, k):
  c, model, params = linear
  c = c.copy_and_resolve_references()
  c.iwae_k = k
  batch, keys = _batch(), jax.random.split(jax.random.key(9), B)
  loss_fn = lambda p: losses.iwae_loss(p, batch, keys, 0, model=model, config=c)[0]
  ref_fn = lambda p: _independent_iwae(p, batch["image"], keys, k)
  np.testing.assert_allclose(loss_fn(params), ref_fn(params), rtol=1e-5)
  got, want = jax.grad(loss_fn)(params), jax.grad(ref_fn)(params)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=2e-4, atol=1e-4)


def test_iwae_k_1_is_the_sampled_elbo_at_the_elbo_draw(linear):
  """k = 1: -log w at the ELBO's own draw: recon + log q - log p; it equals -ELBO in expectation."""
  c, model, params = linear
  c = c.copy_and_resolve_references()
  c.iwae_k = 1
  batch, keys = _batch(n=512), jax.random.split(jax.random.key(2), 512)
  loss, metrics = losses.iwae_loss(params, batch, keys, 0, model=model, config=c)
  x, context, latent_keys = losses.posterior(params, batch, keys, model=model)
  inf = model_lib.infer(params, context, latent_keys, model=model)
  (g,) = inf.groups
  sampled_B = -inf.p_x.log_prob(x) + g.log_q - g.log_p
  np.testing.assert_allclose(loss, jnp.mean(sampled_B), rtol=1e-6)
  np.testing.assert_allclose(metrics["neg_elbo"], loss, rtol=1e-6)  # one sample: the same number
  terms = losses.elbo_terms(params, batch, keys, model=model)
  np.testing.assert_allclose(terms["recon"], -inf.p_x.log_prob(x), rtol=1e-6)  # the same draw
  # log q - log p estimates the closed-form KL: equal in expectation over the draws.
  diff = np.asarray(g.log_q - g.log_p - terms["kl"], np.float64)
  assert abs(diff.mean()) < 5 * diff.std(ddof=1) / math.sqrt(diff.size)


def test_iwae_metrics_are_the_bound_and_the_mean_log_weight_of_the_same_draws(linear):
  """k = 8: neg_iwae = -mean_b log mean_s w_bs and neg_elbo = -mean_{b,s} log w_bs, from an independent
  computation of the same draws' log w; Jensen puts the first below the second."""
  c, model, params = linear
  c = c.copy_and_resolve_references()
  c.iwae_k = 8
  batch, keys = _batch(n=16), jax.random.split(jax.random.key(4), 16)
  _, m = losses.iwae_loss(params, batch, keys, 0, model=model, config=c)
  log_w = np.asarray(_independent_log_w(params, batch["image"], keys, 8), np.float64)
  bound = np.log(np.mean(np.exp(log_w - log_w.max(0)), axis=0)) + log_w.max(0)
  np.testing.assert_allclose(m["neg_iwae"], -bound.mean(), rtol=1e-5)
  np.testing.assert_allclose(m["neg_elbo"], -log_w.mean(), rtol=1e-5)
  assert float(m["neg_iwae"]) < float(m["neg_elbo"])


def _ladder_config(**model):
  c = base_config()
  c.model.name = "ladder"
  c.model.latent_dims, c.model.hidden, c.model.layers_per_latent = (4, 3), (16, 8), 1
  c.data.image_size = 4
  c.model.update(model)
  return c


@pytest.mark.parametrize("name", ["vae", "ladder"])
def test_free_bits_floor_each_groups_batch_mean_kl(name):
  """kl_free_bits = lam: loss = recon + sum_g max(lam, mean_b KL_g); a floor between two groups' KLs
  changes only the smaller one's term (a floor on the total would not)."""
  c = _ladder_config() if name == "ladder" else base_config()
  c.data.image_size = 4
  model = model_lib.make_model(c, (4, 4, 1))
  params = model_lib.init(model, jax.random.key(0), (4, 4, 1))
  params = jax.tree.map(lambda a: a * 4.0, params)  # make the KLs clearly non-zero
  batch, keys = _batch(), jax.random.split(jax.random.key(1), B)
  _, m = losses.elbo_loss(params, batch, keys, 0, model=model, config=c)
  kls = [float(m[f"kl_g{g}"]) for g in range(2)] if name == "ladder" else [float(m["kl"])]
  floors = [0.5 * min(kls), 0.5 * (min(kls) + max(kls)) if len(kls) > 1 else 2 * kls[0], 2 * max(kls)]
  for lam in floors:
    c.kl_free_bits = lam
    loss, _ = losses.elbo_loss(params, batch, keys, 0, model=model, config=c)
    np.testing.assert_allclose(loss, float(m["recon"]) + sum(max(lam, kl) for kl in kls), rtol=1e-5)
    c.beta, c.kl_warmup_steps = 2.0, 0
    beta_loss, _ = losses.beta_elbo_loss(params, batch, keys, 0, model=model, config=c)
    np.testing.assert_allclose(beta_loss, float(m["recon"]) + 2.0 * sum(max(lam, kl) for kl in kls), rtol=1e-5)


@pytest.mark.parametrize("backend", [("pmap", 4), ("jit", 2)])
def test_iwae_training_steps_do_not_depend_on_the_device_split(backend):
  """Three IWAE (k = 3) updates of a ladder give the same parameters on 1 device and on 2 or 4."""
  c = _ladder_config()
  c.loss, c.iwae_k, c.learning_rate = "iwae", 3, 1e-2
  shape = (4, 4, 1)
  model = model_lib.make_model(c, shape)
  params = model_lib.init(model, jax.random.key(0), shape)
  opt = ts.make_optimizer(c)
  images = np.random.default_rng(0).integers(0, 256, (3, 8, *shape), np.uint8)

  def run(name, n):
    be = parallel.make_backend(name, n)
    step = be.compile(functools.partial(ts.train_steps, loss_fn=losses.iwae_loss, model=model, config=c,
                                        optimizer=opt))
    state, _ = step(be.replicate(ts.init_state(params, opt)),
                    be.shard_batch({"image": images}, batch_axis=1), be.replicate(jax.random.key(5)))
    return jax.device_get(be.unreplicate(state.params))
  reference, got = run("pmap", 1), run(*backend)
  moved = _l2_norm(jax.tree.map(lambda a, b: a - b, reference, params))
  assert float(moved) > 1e-3
  for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(got)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
