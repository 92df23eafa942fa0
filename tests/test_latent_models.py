"""Tests of the model contract (vae_jax/models): latent groups, their KLs, the ladder's generative
path, importance-sample streams, conditioning, and the registry."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import model as model_lib
from vae_jax.config import base_config
from vae_jax.distributions import DiagGaussian
from vae_jax.errors import UserError

SHAPE = (4, 4, 1)


def _ladder(**model):
  c = base_config()
  c.model.name = "ladder"
  c.model.latent_dims, c.model.hidden, c.model.layers_per_latent = (5, 3), (16, 8), 1
  c.data.image_size = 4
  c.model.update(model)
  m = model_lib.make_model(c, SHAPE)
  params = model_lib.init(m, jax.random.key(0), SHAPE)
  return m, jax.tree.map(lambda a: 2.0 * a, params)  # larger weights: non-trivial conditionals


def _x(n, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(n, *SHAPE)), jnp.float32)


def test_ladder_groups_mc_kl_matches_the_closed_form_and_log_probs():
  """Top group: E[log q - log p] over draws equals the mean closed-form KL (5 SE). Every group's
  log q and log p equal scipy-style Gaussian log densities recomputed from the conditionals."""
  m, params = _ladder()
  n = 20_000
  x = jnp.broadcast_to(_x(1), (n, *SHAPE))  # one image, many independent draws
  keys = jax.random.split(jax.random.key(1), n)
  context = model_lib.encode(params, x, model=m)
  inf = model_lib.infer(params, context, keys, model=m)
  top, bottom = inf.groups
  assert bottom.kl is None and top.kl is not None  # only the top group's closed form is valid
  diff = np.asarray(top.log_q - top.log_p, np.float64)
  kl = np.asarray(top.kl, np.float64)
  assert kl.std() > 0.01  # it depends on the z_1 draw
  se = math.sqrt(diff.var(ddof=1) / n)
  assert abs(diff.mean() - kl.mean()) < 5 * se, (diff.mean(), kl.mean(), se)
  # log p(z_1 | z_2) recomputed from the generative net at the drawn z_2.
  p1 = m.apply({"params": params}, top.z, method=lambda mod, z: mod.p_nets[0](z))
  want = np.sum(-0.5 * (np.log(2 * np.pi) + p1.logvar + (bottom.z - p1.mean) ** 2 / np.exp(p1.logvar)), -1)
  np.testing.assert_allclose(bottom.log_p, want, rtol=1e-4, atol=1e-4)
  # log q(z_2 | z_1) recomputed from the inference net at the drawn z_1.
  q2 = m.apply({"params": params}, bottom.z, method=lambda mod, z: mod.q_nets[1](z))
  want = np.sum(-0.5 * (np.log(2 * np.pi) + q2.logvar + (top.z - q2.mean) ** 2 / np.exp(q2.logvar)), -1)
  np.testing.assert_allclose(top.log_q, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_ladder_generative_path_samples_the_prior(temperature):
  """z_2 ~ N(0, T^2 I); (z_1 - mu(z_2)) / sigma(z_2) ~ N(0, T^2): moments within 5 SE."""
  m, params = _ladder()
  n = 20_000
  out = model_lib.generate(params, jax.random.split(jax.random.key(2), n), model=m, temperature=temperature)
  z2, z1 = (np.asarray(z, np.float64) for z in out.zs)
  p1 = m.apply({"params": params}, jnp.asarray(z2, jnp.float32), method=lambda mod, z: mod.p_nets[0](z))
  u = (z1 - np.asarray(p1.mean)) / np.exp(0.5 * np.asarray(p1.logvar))
  for v in (z2, u):
    assert np.all(np.abs(v.mean(0)) < 5 * temperature / math.sqrt(n))
    assert np.all(np.abs(v.var(0) - temperature**2) < 5 * temperature**2 * math.sqrt(2 / n))
  assert abs(np.corrcoef(z2[:, 0], u[:, 0])[0, 1]) < 5 / math.sqrt(n)  # fresh noise per group


def test_importance_samples_draw_independent_noise_and_sample_0_is_the_default():
  """infer(sample=s): s = 0 is the plain call; s = 0 and s = 1 draws are uncorrelated, per group."""
  m, params = _ladder()
  n = 4000
  x, keys = _x(n), jax.random.split(jax.random.key(3), n)
  context = model_lib.encode(params, x, model=m)
  default = model_lib.infer(params, context, keys, model=m)
  s0, s1 = (model_lib.infer(params, context, keys, model=m, sample=s) for s in (0, 1))
  for g in range(2):
    np.testing.assert_array_equal(default.groups[g].z, s0.groups[g].z)
  # The bottom group's noise: standardise by q(z_1|x), the same for both samples.
  e0 = (np.asarray(s0.groups[1].z) - np.asarray(context.mean)) / np.exp(0.5 * np.asarray(context.logvar))
  e1 = (np.asarray(s1.groups[1].z) - np.asarray(context.mean)) / np.exp(0.5 * np.asarray(context.logvar))
  assert abs(np.corrcoef(e0[:, 0], e1[:, 0])[0, 1]) < 5 / math.sqrt(n)
  assert abs(e0.var() - 1.0) < 0.1


def test_zero_temperature_inference_is_the_mean_path():
  """infer(temperature=0) puts z_1 at q(z_1|x)'s mean and z_2 at q(z_2|z_1)'s mean given it."""
  m, params = _ladder()
  x = _x(3)
  context = model_lib.encode(params, x, model=m)
  inf = model_lib.infer(params, context, jax.random.split(jax.random.key(0), 3), model=m, temperature=0.0)
  top, bottom = inf.groups
  np.testing.assert_allclose(bottom.z, context.mean, rtol=1e-6)
  q2 = m.apply({"params": params}, bottom.z, method=lambda mod, z: mod.q_nets[1](z))
  np.testing.assert_allclose(top.z, q2.mean, rtol=1e-6)


def _conditional(seed=0):
  c = base_config()
  c.model.num_classes, c.model.latent_dim, c.model.hidden = 3, 2, (8,)
  c.data.image_size = 4
  m = model_lib.make_model(c, SHAPE)
  params = model_lib.init(m, jax.random.key(seed), SHAPE)
  rng = np.random.default_rng(seed)
  params = dict(params, prior_by_class=jnp.asarray(rng.normal(size=(3, 4)), jnp.float32))
  return m, params


def test_conditional_vae_kl_to_the_class_prior_matches_monte_carlo():
  """q.kl(p(z|y)) in closed form equals E[log q - log p(z|y)] over draws (5 SE), per class."""
  m, params = _conditional()
  n = 20_000
  for label in range(3):
    y = jnp.full((n,), label)
    context = model_lib.encode(params, jnp.broadcast_to(_x(1), (n, *SHAPE)), model=m, y=y)
    inf = model_lib.infer(params, context, jax.random.split(jax.random.key(label), n), model=m, y=y)
    (g,) = inf.groups
    diff = np.asarray(g.log_q - g.log_p, np.float64)
    assert abs(diff.mean() - float(g.kl[0])) < 5 * diff.std(ddof=1) / math.sqrt(n)
    # the prior really is the class's row: log p recomputed
    mean, logvar = np.split(np.asarray(params["prior_by_class"][label]), 2)
    want = np.sum(-0.5 * (np.log(2 * np.pi) + logvar + (np.asarray(g.z) - mean) ** 2 / np.exp(logvar)), -1)
    np.testing.assert_allclose(g.log_p, want, rtol=1e-4, atol=1e-4)


def test_changing_the_label_changes_the_samples_but_not_the_noise():
  """Prior samples for labels 0 and 1 from the same keys differ, and the draws are the class means
  plus the same standardised noise."""
  m, params = _conditional()
  keys = jax.random.split(jax.random.key(5), 16)
  a = model_lib.generate(params, keys, model=m, y=jnp.zeros(16, jnp.int32))
  b = model_lib.generate(params, keys, model=m, y=jnp.ones(16, jnp.int32))
  assert float(jnp.max(jnp.abs(a.p_x.mean - b.p_x.mean))) > 1e-3
  table = np.asarray(params["prior_by_class"])
  ea = (np.asarray(a.zs[0]) - table[0, :2]) / np.exp(0.5 * table[0, 2:])
  eb = (np.asarray(b.zs[0]) - table[1, :2]) / np.exp(0.5 * table[1, 2:])
  np.testing.assert_allclose(ea, eb, rtol=1e-4, atol=1e-5)


def test_unknown_model_name_lists_the_registered_ones():
  c = base_config()
  c.model.name = "vdvea"
  with pytest.raises(UserError, match="valid names: dcgan, hvae, ladder, vae"):
    model_lib.make_model(c, SHAPE)


@pytest.mark.parametrize("overrides, match", [({"hidden": (16,)}, "one hidden width per stochastic layer"),
                                              ({"latent_dims": (4, 0)}, "latent_dims"),
                                              ({"activation": "sigmoidish"}, "activation")])
def test_ladder_config_errors_are_one_line(overrides, match):
  with pytest.raises(UserError, match=match):
    _ladder(**overrides)


def _hvae(blocks_per_res=(1, 2)):
  c = base_config()
  c.model.name = "hvae"
  c.model.resolutions, c.model.widths = (8, 4), (8, 8)
  c.model.blocks_per_res, c.model.enc_blocks_per_res, c.model.z_channels = blocks_per_res, (1, 1), 2
  c.data.image_size = 8
  m = model_lib.make_model(c, (8, 8, 1))
  params = model_lib.init(m, jax.random.key(0), (8, 8, 1))
  # Perturb every leaf: the zero-initialised branches become non-trivial conditionals.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  leaves = [l + 0.1 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)]
  return m, jax.tree.unflatten(tree, leaves)


def test_hvae_starts_as_q_equal_p_equal_n01_and_its_posteriors_read_the_image():
  """At initialisation every residual branch ends in zeros: q = p = N(0, I) in every group (KL 0,
  log q = log p at the draw) and the likelihood ignores z and x. Once the parameters move, every
  group's posterior mean (the zero-temperature path) depends on the image through the encoder."""
  m, moved = _hvae()
  init = model_lib.init(m, jax.random.key(0), (8, 8, 1))
  x = jnp.asarray(np.random.default_rng(2).uniform(size=(2, 8, 8, 1)), jnp.float32)
  keys = jax.random.split(jax.random.key(5), 2)
  inf = model_lib.infer(init, model_lib.encode(init, x, model=m), keys, model=m)
  for g in inf.groups:
    np.testing.assert_allclose(g.kl, 0.0, atol=1e-6)
    np.testing.assert_allclose(g.log_q, g.log_p, atol=1e-5)
    z = np.asarray(g.z, np.float64).reshape(2, -1)
    np.testing.assert_allclose(g.log_p, -0.5 * np.sum(z**2 + math.log(2 * math.pi), axis=1), rtol=1e-5)
  np.testing.assert_allclose(inf.p_x.logits[0], inf.p_x.logits[1], atol=1e-6)
  mean = model_lib.infer(moved, model_lib.encode(moved, x, model=m), keys, model=m, temperature=0.0)
  for g in mean.groups:
    assert float(jnp.max(jnp.abs(g.z[0] - g.z[1]))) > 1e-3


def test_hvae_every_groups_closed_form_kl_matches_monte_carlo():
  """Top-down inference: q and p of each group condition on the same draws above, so
  E[log q - log p] over draws equals the mean closed-form KL, for every group (5 SE)."""
  m, params = _hvae()
  n = 4000
  x = jnp.broadcast_to(jnp.asarray(np.random.default_rng(0).uniform(size=(1, 8, 8, 1)), jnp.float32),
                       (n, 8, 8, 1))
  context = model_lib.encode(params, x, model=m)
  inf = model_lib.infer(params, context, jax.random.split(jax.random.key(3), n), model=m)
  assert [g.z.shape[1:] for g in inf.groups] == [(4, 4, 2), (4, 4, 2), (8, 8, 2)]
  for g in inf.groups:
    diff = np.asarray(g.log_q - g.log_p, np.float64)
    kl = np.asarray(g.kl, np.float64)
    se = math.sqrt(diff.var(ddof=1) / n)
    assert kl.mean() > 0.05  # non-trivial conditionals
    assert abs(diff.mean() - kl.mean()) < 5 * se + 1e-3, (diff.mean(), kl.mean(), se)


def _conv(p, x):
  """flax's own nn.Conv (SAME padding) with the given parameters."""
  kernel = p["kernel"]
  return nn.Conv(kernel.shape[-1], kernel.shape[:2], padding="SAME").apply({"params": p}, x)


def _res(p, h, residual=True):
  """A residual branch written out: conv(gelu(.)) four times, Conv_0 ... Conv_3."""
  y = h
  for i in range(4):
    y = _conv(p[f"Conv_{i}"], nn.gelu(y))
  return h + y if residual else y


def _hvae_reference(m, params, x, zs):
  """The hierarchy as its docstring states it, in the plainest order: the posterior net on the
  concatenation [h, encoder activation], every group computed at its draw, each projection
  after the upsampling. Returns (logits, [(q, p) per group]) at the given draws `zs`."""
  n, c = len(m.resolutions), m.z_channels
  h, acts = _conv(params["stem"], x), []
  for r in range(n):
    for i in range(m.enc_blocks_per_res[r]):
      h = _res(params[f"enc_blocks_{r}_{i}"], h)
    acts.append(h)
    if r + 1 < n:
      h = _conv(params[f"enc_proj_{r}"], nn.avg_pool(h, (2, 2), strides=(2, 2)))
  h = jnp.broadcast_to(params["top"], (x.shape[0], *params["top"].shape))
  dists = []
  for r in reversed(range(n)):
    if r + 1 < n:
      h = _conv(params[f"dec_proj_{r}"], jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2))
    for i in range(m.blocks_per_res[r]):
      b = params[f"dec_blocks_{r}_{i}"]
      prior = _res(b["prior"], h, residual=False)
      post = _res(b["posterior"], jnp.concatenate([h, acts[r]], axis=-1), residual=False)
      q, p = DiagGaussian(post[..., :c], post[..., c:]), DiagGaussian(prior[..., :c], prior[..., c:2 * c])
      dists.append((q, p))
      h = _res(b["res"], h + prior[..., 2 * c:] + _conv(b["z_proj"], zs[len(dists) - 1]))
  return _conv(params["out"], h), dists


@pytest.mark.parametrize("blocks_per_res", [(1, 2), (2, 0)])
def test_hvae_matches_the_hierarchy_written_out(blocks_per_res):
  """infer's draws, log q, log p, KL and logits equal `_hvae_reference` at the same draws, and at
  temperature 0 each group is its posterior mean given the means above. (2, 0): no group at the
  lowest resolution, so group 0's state is the start carried up through a projection."""
  m, params = _hvae(blocks_per_res)
  x = jnp.asarray(np.random.default_rng(6).uniform(size=(3, 8, 8, 1)), jnp.float32)
  keys = jax.random.split(jax.random.key(7), 3)
  context = model_lib.encode(params, x, model=m)
  for temperature in (1.0, 0.0):
    inf = model_lib.infer(params, context, keys, model=m, temperature=temperature, sample=3)
    logits, dists = _hvae_reference(m, params, x, [g.z for g in inf.groups])
    assert len(dists) == len(inf.groups) == sum(blocks_per_res)
    np.testing.assert_allclose(inf.p_x.logits, logits, rtol=1e-4, atol=1e-4)
    for g, (q, p) in zip(inf.groups, dists):
      np.testing.assert_allclose(g.log_q, q.log_prob(g.z), rtol=1e-4, atol=1e-3)
      np.testing.assert_allclose(g.log_p, p.log_prob(g.z), rtol=1e-4, atol=1e-3)
      np.testing.assert_allclose(g.kl, q.kl(p), rtol=1e-4, atol=1e-3)
      if temperature == 0.0:
        np.testing.assert_allclose(g.z, q.mean, rtol=1e-4, atol=1e-4)
      else:
        assert float(jnp.max(jnp.abs(g.z - q.mean))) > 0.1


def _mlp_logits(dense_params, z, activation, shape):
  """Dense layers in order, `activation` between them, the last one's output as an image: numpy."""
  h = np.asarray(z, np.float64)
  layers = [dense_params[f"Dense_{i}"] for i in range(len(dense_params))]
  for i, layer in enumerate(layers):
    h = h @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64)
    h = activation(h) if i + 1 < len(layers) else h
  return h.reshape(len(h), *shape)


@pytest.mark.parametrize("which", ["vae", "ladder"])
def test_decode_is_the_decoder_mlp_of_the_bottom_group(which):
  """The likelihood of infer, generate and decode is the decoder written out: the vae's ReLU MLP of
  its z, the ladder's tanh MLP of z_1 (the last group in generative order)."""
  if which == "ladder":
    m, params = _ladder()
    dense, activation = params["x_net"], np.tanh
  else:
    c = base_config()
    c.data.image_size, c.model.hidden = 4, (8,)
    m = model_lib.make_model(c, SHAPE)
    params = jax.tree.map(lambda a: a + 0.1, model_lib.init(m, jax.random.key(0), SHAPE))  # non-zero biases
    dense, activation = params["decoder"], lambda h: np.maximum(h, 0.0)
  keys = jax.random.split(jax.random.key(4), 3)
  inf = model_lib.infer(params, model_lib.encode(params, _x(3, seed=1), model=m), keys, model=m)
  gen = model_lib.generate(params, keys, model=m, temperature=0.7)
  for zs, p_x in ((tuple(g.z for g in inf.groups), inf.p_x), (gen.zs, gen.p_x)):
    want = _mlp_logits(dense, zs[-1], activation, SHAPE)
    np.testing.assert_allclose(p_x.logits, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model_lib.decode(params, zs, model=m).logits, want, rtol=1e-5, atol=1e-5)


def test_hvae_decode_agrees_with_infer_and_generate():
  """decode(zs), its own top-down walk, reproduces the likelihood infer and generate built while
  drawing the same groups (three separate code paths through the blocks)."""
  m, params = _hvae()
  x = jnp.asarray(np.random.default_rng(1).uniform(size=(3, 8, 8, 1)), jnp.float32)
  keys = jax.random.split(jax.random.key(4), 3)
  inf = model_lib.infer(params, model_lib.encode(params, x, model=m), keys, model=m)
  again = model_lib.decode(params, tuple(g.z for g in inf.groups), model=m)
  np.testing.assert_allclose(again.logits, inf.p_x.logits, rtol=1e-5, atol=1e-5)
  gen = model_lib.generate(params, keys, model=m, temperature=0.7)
  np.testing.assert_allclose(model_lib.decode(params, gen.zs, model=m).logits, gen.p_x.logits,
                             rtol=1e-5, atol=1e-5)
