"""Tests of vae_jax/train_step.py and vae_jax/parallel.py on 1, 2 and 4 virtual CPU devices.

A tiny MLP VAE (8x8x1 images, hidden 16, latent 2) with dynamic binarisation, so
every step draws random numbers; global batch 8.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import losses
from vae_jax import model as model_lib
from vae_jax import parallel
from vae_jax import train_step as ts
from vae_jax.config import base_config
from vae_jax.errors import UserError
from vae_jax.evaluators import elbo as elbo_evaluator

SHAPE = (8, 8, 1)
BATCH = 8
NUM_STEPS = 5       # steps run per backend; parameters are compared after PARITY_STEPS
PARITY_STEPS = 3
SEED_KEY = 1
CASES = [(name, n) for name in ("pmap", "jit") for n in (1, 2, 4)]


def _l2_norm(tree) -> float:
  """The Euclidean norm of all of a pytree's entries, in float64 numpy."""
  return float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree))))


def _config():
  c = base_config()
  c.model.encoder = c.model.decoder = "mlp"
  c.model.hidden = (16,)
  c.model.latent_dim = 2
  c.model.likelihood = "bernoulli"
  c.data.image_size = SHAPE[0]
  c.data.binarize = True
  c.batch_size = BATCH
  c.learning_rate = 1e-2
  c.log_grad_norm = True  # checked against the global-batch gradient below
  return c


def _capture_grads():
  """A pass-through transformation whose state is the last gradient it saw (to read the applied gradient)."""
  return optax.GradientTransformation(
      init=lambda params: jax.tree.map(jnp.zeros_like, params),
      update=lambda grads, state, params=None: (grads, grads))


@pytest.fixture(scope="module")
def setup():
  """(config, model, initial params, optimizer, NUM_STEPS uint8 batches).

  The optimizer is the config's Adam, preceded by a pass-through that records the gradient
  each step applies, so one compiled step serves the parity, Adam and gradient tests.
  """
  c = _config()
  model = model_lib.make_model(c, SHAPE)
  params = jax.jit(lambda k: model_lib.init(model, k, SHAPE))(jax.random.key(0))
  rng = np.random.default_rng(0)
  batches = [{"image": rng.integers(0, 256, (BATCH, *SHAPE), dtype=np.uint8)} for _ in range(NUM_STEPS)]
  return c, model, params, optax.chain(_capture_grads(), ts.make_optimizer(c)), batches


def _counting_elbo(counter):
  """The elbo loss, counting how often its Python body runs (once per trace)."""
  def loss(params, batch, rng, step, *, model, config):
    counter[0] += 1
    return losses.elbo_loss(params, batch, rng, step, model=model, config=config)
  return loss


def _record(history, state, metrics):
  history.append(dict(params=jax.tree.map(np.asarray, state.params),
                      grads=jax.tree.map(np.asarray, state.opt_state[0]),
                      metrics=jax.tree.map(np.asarray, metrics)))


@pytest.fixture(scope="module")
def backend_runs(setup):
  """For each (backend, devices): the per-step history, the loss's trace count and the final step."""
  c, model, params, opt, batches = setup
  runs = {}
  for name, n in CASES:
    counter = [0]
    backend = parallel.make_backend(name, n)
    assert backend.num_devices == n
    step = backend.compile(functools.partial(ts.train_step, loss_fn=_counting_elbo(counter),
                                             model=model, config=c, optimizer=opt),
                           donate_argnums=(0,))
    # A private copy goes in: the step donates (frees) its input state, and JitBackend.replicate
    # aliases the caller's device-0 buffers (see test_replicate_keeps_callers_copy_under_donation).
    state = backend.replicate(jax.tree.map(jnp.copy, ts.init_state(params, opt)))
    rng = backend.replicate(jax.random.key(SEED_KEY))
    history = []
    for b in batches:
      state, m = step(state, backend.shard_batch(b), rng)  # the old state is donated: not reused
      _record(history, backend.unreplicate(state), backend.unreplicate(m))
    runs[name, n] = dict(history=history, traces=counter[0], step=int(backend.unreplicate(state).step))
  return runs


@pytest.fixture(scope="module")
def reference(backend_runs):
  """The one-device run (jit backend, 1 device); test_train_step_is_one_adam_update checks it by hand."""
  return backend_runs["jit", 1]["history"]


def _max_abs_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("name, n", [c for c in CASES if c != ("jit", 1)])
def test_backends_match_single_device(setup, reference, backend_runs, name, n):
  """pmap over 1, 2, 4 and jit over 2, 4 devices give the one-device parameters (to 1e-5) after 3 steps.

  The loss draws random numbers (binarisation, z); their keys follow global example positions.
  """
  run = backend_runs[name, n]
  diff = _max_abs_diff(run["history"][PARITY_STEPS - 1]["params"], reference[PARITY_STEPS - 1]["params"])
  assert diff < 1e-5, diff
  # The parameters did move, so the comparison is not vacuous.
  assert _max_abs_diff(reference[PARITY_STEPS - 1]["params"], setup[2]) > 1e-3
  for t in range(PARITY_STEPS):
    got, want = run["history"][t]["metrics"], reference[t]["metrics"]
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
    np.testing.assert_allclose(got["kl"], want["kl"], rtol=1e-4, atol=1e-6)
  assert run["step"] == NUM_STEPS


@pytest.mark.parametrize("name, n", CASES)
def test_no_retracing_after_first_step(backend_runs, name, n):
  """Five steps trace the loss exactly once: the compiled step is reused, not re-traced."""
  assert backend_runs[name, n]["traces"] == 1


def _example_keys(step, positions):
  """The documented key scheme: fold_in(fold_in(run key, step), position in the global batch)."""
  step_key = jax.random.fold_in(jax.random.key(SEED_KEY), step)
  return jax.vmap(lambda p: jax.random.fold_in(step_key, p))(jnp.asarray(positions))


@pytest.fixture(scope="module")
def global_grad(setup):
  """g(params, batch, step) -> (loss, grad): the global-batch mean loss and its gradient, computed directly."""
  c, model, _, _, _ = setup

  @jax.jit
  def g(params, batch, step):
    keys = _example_keys(step, np.arange(BATCH))
    return jax.value_and_grad(
        lambda p: losses.elbo_loss(p, batch, keys, step, model=model, config=c)[0])(params)
  return g


def test_train_step_is_one_adam_update(setup, reference, global_grad):
  """Each of two steps is one Adam update (lr 1e-2, b1 0.9, b2 0.999, eps 1e-8, bias-corrected), by hand."""
  c, _, params, _, batches = setup
  lr, b1, b2, eps = c.learning_rate, 0.9, 0.999, 1e-8
  f64 = lambda tree: jax.tree.map(lambda x: np.asarray(x, np.float64), tree)
  before = params
  m = v = jax.tree.map(lambda x: np.zeros(x.shape), params)
  for t in range(2):
    loss, g = global_grad(before, {"image": jnp.asarray(batches[t]["image"])}, t)
    np.testing.assert_allclose(reference[t]["metrics"]["loss"], loss, rtol=1e-5)
    g = f64(g)
    m = jax.tree.map(lambda mi, gi: b1 * mi + (1 - b1) * gi, m, g)
    v = jax.tree.map(lambda vi, gi: b2 * vi + (1 - b2) * gi**2, v, g)
    expected = jax.tree.map(lambda pi, mi, vi: pi - lr * (mi / (1 - b1**(t + 1)))
                            / (np.sqrt(vi / (1 - b2**(t + 1))) + eps), f64(before), m, v)
    diff = _max_abs_diff(reference[t]["params"], expected)
    assert diff < 1e-6, (t, diff)
    before = reference[t]["params"]


@pytest.mark.parametrize("name, n", [c for c in CASES if c[1] > 1])
def test_gradient_is_global_batch_mean(setup, backend_runs, global_grad, name, n):
  """On 2 and 4 devices the applied gradient (pmean of shard means) is the gradient of the global-batch mean loss.

  Adam is nearly scale-invariant, so this catches e.g. a psum where a pmean belongs, which
  the parameter comparison alone could miss.
  """
  _, _, params, _, batches = setup
  run = backend_runs[name, n]
  before = params
  for t in range(2):
    loss, expected = global_grad(before, {"image": jnp.asarray(batches[t]["image"])}, t)
    scale = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(expected))
    assert _max_abs_diff(run["history"][t]["grads"], expected) < 1e-5 * scale
    metrics = run["history"][t]["metrics"]
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["grad_norm"], _l2_norm(expected), rtol=1e-5)
    before = run["history"][t]["params"]


@pytest.mark.parametrize("flag", [False, True])
def test_grad_norm_metric_is_opt_in(setup, flag):
  c, model, params, opt, batches = setup
  config = c.copy_and_resolve_references()
  config.log_grad_norm = flag
  step = functools.partial(ts.train_step, loss_fn=losses.elbo_loss, model=model, config=config,
                           optimizer=opt)
  _, metrics = jax.eval_shape(step, ts.init_state(params, opt), batches[0], jax.random.key(1))
  assert ("grad_norm" in metrics) == flag
  assert {"loss", "recon", "kl", "neg_elbo", "elbo"} <= set(metrics)


@pytest.mark.parametrize("name, n", [("pmap", 2), ("jit", 2), ("jit", 4)])
def test_replicate_keeps_callers_copy_under_donation(name, n):
  """backend.replicate returns fresh buffers: donating the replica to a step leaves the caller's tree alive.

  (parallel.JitBackend.replicate promises this in a comment; `device_put(..., may_alias=False)`
  to a multi-device sharding still aliases device 0's buffer in jax 0.10.)
  """
  backend = parallel.make_backend(name, n)
  tree = {"w": jnp.arange(4.0)}
  bump = backend.compile(lambda t, axis_name: jax.tree.map(lambda x: x + 1, t), donate_argnums=(0,))
  out = backend.unreplicate(bump(backend.replicate(tree)))
  np.testing.assert_array_equal(out["w"], np.arange(4.0) + 1)
  assert not tree["w"].is_deleted()
  np.testing.assert_array_equal(tree["w"], np.arange(4.0))


# --- the elbo evaluator's per-batch sums ---------------------------------------------------------


def _eval_batch(num_real, num_pad, pad_seed):
  """num_real fixed test examples followed by num_pad masked-out rows of random content."""
  real = np.random.default_rng(0).integers(0, 256, (num_real, *SHAPE), dtype=np.uint8)
  pad = np.random.default_rng(pad_seed).integers(0, 256, (num_pad, *SHAPE), dtype=np.uint8)
  return {"image": np.concatenate([real, pad]),
          "index": np.arange(num_real + num_pad, dtype=np.int32),
          "mask": np.arange(num_real + num_pad) < num_real}


EVAL_KEY = 5


@pytest.fixture(scope="module")
def eval_on(setup):
  """eval_on(name, n, batch): the elbo evaluator's masked sums through a backend, compiled once per (name, n).

  Evaluation here skips binarisation (cheaper to compile); the draws of z still use per-example keys.
  """
  _, _, params, _, _ = setup
  c = _config()
  c.data.binarize = False
  model = model_lib.make_model(c, SHAPE)
  compiled = {}

  def run(name, n, batch):
    if (name, n) not in compiled:
      backend = parallel.make_backend(name, n)
      compiled[name, n] = (backend, backend.compile(functools.partial(elbo_evaluator._elbo_sums, model=model)),
                           backend.replicate(params), backend.replicate(jax.random.key(EVAL_KEY)))
    backend, fn, d_params, d_key = compiled[name, n]
    out = backend.unreplicate(fn(d_params, backend.shard_batch(batch), d_key))
    return {k: float(v) for k, v in out.items()}
  return run


@pytest.fixture(scope="module")
def eval_reference(eval_on):
  """Sums over a batch of 6 real examples and 2 masked-out padding rows, on one device."""
  return eval_on("pmap", 1, _eval_batch(6, 2, 1))


def test_eval_sums_ignore_padding(eval_reference, eval_on):
  """Masked-out rows add nothing whatever their content, though they would if unmasked; count = mask.sum()."""
  other_padding = eval_on("pmap", 1, _eval_batch(6, 2, 2))
  assert eval_reference["count"] == other_padding["count"] == 6
  for k in ("recon", "kl", "neg_elbo"):
    np.testing.assert_allclose(other_padding[k], eval_reference[k], rtol=1e-6)
  everything = eval_on("pmap", 1, dict(_eval_batch(6, 2, 2), mask=np.ones(8, bool)))
  assert everything["count"] == 8 and everything["neg_elbo"] > eval_reference["neg_elbo"] + 10
  some = eval_on("pmap", 1, dict(_eval_batch(6, 2, 2), mask=np.arange(8) % 3 == 0))
  assert some["count"] == 3
  np.testing.assert_allclose(eval_reference["neg_elbo"], eval_reference["recon"] + eval_reference["kl"],
                             rtol=1e-6)
  # Sums, not means: six examples of tens of nats each.
  assert eval_reference["neg_elbo"] > 6 * 10


@pytest.mark.parametrize("name, n", [c for c in CASES if c != ("pmap", 1)])
def test_eval_sums_split_invariant(eval_reference, eval_on, name, n):
  """Sums and count over a padded batch are those of one device on 2 and 4 devices (pmap) and 1, 2, 4 (jit)."""
  out = eval_on(name, n, _eval_batch(6, 2, 3))
  assert out["count"] == 6.0
  for k in ("recon", "kl", "neg_elbo"):
    np.testing.assert_allclose(out[k], eval_reference[k], rtol=1e-5)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pmap", "jit"])
def test_batch_not_divisible_by_devices_is_user_error(name):
  """A global batch of 6 cannot be split over 4 devices: UserError naming both numbers."""
  backend = parallel.make_backend(name, 4)
  with pytest.raises(UserError, match="6.*4"):
    backend.shard_batch({"image": np.zeros((6, *SHAPE), np.uint8)})


def test_make_backend_errors():
  """Unknown backend names and too many devices are UserErrors; 0 means all devices."""
  with pytest.raises(UserError, match="pmap"):
    parallel.make_backend("vmap")
  with pytest.raises(UserError, match="num_devices"):
    parallel.make_backend("jit", len(jax.local_devices()) + 1)
  assert parallel.make_backend("jit", 0).num_devices == len(jax.local_devices()) == 4


def test_make_optimizer_errors():
  """Unknown optimizer or schedule names are UserErrors listing the valid ones."""
  c = _config()
  c.optimizer = "adagrad"
  with pytest.raises(UserError, match="adam"):
    ts.make_optimizer(c)
  c = _config()
  c.lr_schedule = "linear"
  with pytest.raises(UserError, match="cosine"):
    ts.make_optimizer(c)
