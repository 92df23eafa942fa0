"""Tests of vae_jax/stability.py through the train step and the trainer: the EMA recursion, its
checkpointing and use, and update skipping (non-finite, spikes, an adapting threshold, the stop)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import inference, losses, metrics_log, stability, trainer
from vae_jax import model as model_lib
from vae_jax import train_step as ts
from vae_jax.config import base_config
from vae_jax.errors import UserError

SHAPE = (4, 4, 1)


def _scaled_elbo(scale_at):
  """The elbo loss times scale_at(step): NaN or a huge factor at chosen steps injects bad gradients."""
  def loss(params, batch, rng, step, *, model, config):
    value, metrics = losses.elbo_loss(params, batch, rng, step, model=model, config=config)
    return value * scale_at(step), metrics
  return loss


def _run_steps(config, loss_fn, num_steps):
  """States after each of num_steps jitted train steps on a tiny VAE (one device), and their metrics."""
  model = model_lib.make_model(config, SHAPE)
  params = model_lib.init(model, jax.random.key(0), SHAPE)
  opt = ts.make_optimizer(config)
  step = jax.jit(functools.partial(ts.train_step, loss_fn=loss_fn, model=model, config=config, optimizer=opt))
  state = ts.init_state(params, opt, config)
  rng = np.random.default_rng(0)
  states, metrics = [state], []
  for _ in range(num_steps):
    batch = {"image": jnp.asarray(rng.integers(0, 256, (8, *SHAPE), np.uint8))}
    state, m = step(state, batch, jax.random.key(1))
    states.append(state)
    metrics.append(jax.device_get(m))
  return states, metrics


def _config(**kw):
  c = base_config()
  c.model.hidden, c.model.latent_dim, c.data.image_size, c.learning_rate = (8,), 2, 4, 1e-2
  c.update(kw)
  return c


def _same(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_ema_follows_its_recursion_over_the_parameter_trajectory():
  """ema_{t+1} = d_t ema_t + (1 - d_t) params_{t+1}, d_t = min(d, (1 + t) / (10 + t)), from ema_0 = params_0,
  recomputed in numpy; d = 0.3 is reached at t = 3, so both branches of the min are used."""
  d = 0.3
  states, _ = _run_steps(_config(ema_decay=d), losses.elbo_loss, 6)
  ema = jax.tree.map(lambda p: np.asarray(p, np.float64), states[0].params)
  for t, s in enumerate(states[1:]):
    d_t = min(d, (1 + t) / (10 + t))
    ema = jax.tree.map(lambda e, p: d_t * e + (1 - d_t) * np.asarray(p, np.float64), ema, s.params)
  for got, want in zip(jax.tree.leaves(states[-1].ema_params), jax.tree.leaves(ema)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  assert not _same(states[-1].ema_params, states[-1].params)


def test_ema_forgets_the_initialisation_in_a_short_run_and_is_the_plain_decay_in_a_long_one():
  """Parameters 0 at initialisation, then 1 for T updates: the EMA is 1 - (the initialisation's weight).
  With d = 0.999 and T = 200 that weight is 1 / C(209, 9) (6e-16), not 0.999^200 = 0.82. Past
  t = (10d - 1) / (1 - d) = 8990 the decay is d itself: one update from 0 towards 1 moves the EMA by 1 - d."""
  ema = np.float32(0.0)
  for t in range(200):
    ema = stability.ema_update(ema, np.float32(1.0), 0.999, jnp.int32(t))
  assert float(ema) > 1 - 1e-6
  late = [float(stability.ema_update(np.float32(0.0), np.float32(1.0), 0.999, jnp.int32(t))) for t in (8990, 10**6)]
  np.testing.assert_allclose(late, [0.001, 0.001], rtol=1e-4)
  early = float(stability.ema_update(np.float32(0.0), np.float32(1.0), 0.999, jnp.int32(8000)))
  np.testing.assert_allclose(early, 9 / 8010, rtol=1e-4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e8])
def test_a_bad_gradient_leaves_params_and_optimizer_state_untouched(bad):
  """At step 12 (after the 10-norm window is full) the loss is scaled by NaN / inf / 1e8: that update is
  skipped - params and Adam state bit-identical - and counted; the steps around it are applied."""
  c = _config(skip_updates=True, skip_window=10)
  states, metrics = _run_steps(c, _scaled_elbo(lambda s: jnp.where(s == 12, bad, 1.0)), 14)
  before, after = states[12], states[13]  # states[t] is the state after t steps
  assert _same(before.params, after.params) and _same(before.opt_state, after.opt_state)
  assert int(after.step) == 13 and int(after.skip.skipped) == 1
  assert [m["skipped"] for m in metrics] == [0.0] * 12 + [1.0, 0.0]
  assert not _same(states[13].params, states[14].params)  # training goes on
  assert metrics[12]["grad_norm"] > metrics[12]["skip_threshold"] or not np.isfinite(metrics[12]["grad_norm"])


def test_the_threshold_adapts_to_a_lasting_rise_so_training_never_stalls():
  """From step 15 the loss is scaled by 100 for good: a few updates are skipped, then the running
  quantile catches up and every later update is applied (a fixed threshold would skip forever)."""
  c = _config(skip_updates=True, skip_window=10, skip_quantile=0.5, skip_factor=5.0)
  _, metrics = _run_steps(c, _scaled_elbo(lambda s: jnp.where(s >= 15, 100.0, 1.0)), 40)
  skipped = [m["skipped"] for m in metrics]
  assert sum(skipped[:15]) == 0
  assert 1 <= sum(skipped[15:]) <= 6  # about half a window at the median
  assert sum(skipped[30:]) == 0


def test_decide_skip_keeps_non_finite_norms_out_of_the_window_and_wraps_the_ring():
  """decide_skip step by step, window 4: the threshold is factor x numpy's quantile of the window once
  full; a NaN is skipped without entering the window (the threshold stays finite, so a later spike
  is still skipped); each finite norm, skipped or not, overwrites the oldest slot."""
  q, f = 0.5, 3.0
  decide = jax.jit(functools.partial(stability.decide_skip, quantile=q, factor=f))
  state = stability.init_skip_state(4)
  seen = []
  for norm, want_skip in [(1.0, False), (2.0, False), (3.0, False), (4.0, False), (np.nan, True),
                          (1e3, True), (5.0, False), (np.inf, True), (6.0, False)]:
    skip, threshold, state = decide(jnp.float32(norm), state)
    want = f * np.quantile(seen[-4:], q) if len(seen) >= 4 else np.inf
    np.testing.assert_allclose(float(threshold), want, rtol=1e-6)
    assert bool(skip) == want_skip, (norm, float(threshold))
    if np.isfinite(norm):
      seen.append(norm)
    assert int(state.num_seen) == len(seen)
    assert sorted(np.asarray(state.norms_W).tolist()) == sorted(seen[-4:] + [0.0] * (4 - len(seen[-4:])))
  assert int(state.skipped) == 3 and int(state.consecutive) == 0


def test_no_skipping_until_the_window_is_full_except_non_finite():
  c = _config(skip_updates=True, skip_window=20)
  _, metrics = _run_steps(c, _scaled_elbo(lambda s: jnp.where(s == 3, 1e8, jnp.where(s == 5, np.nan, 1.0))), 8)
  assert [m["skipped"] for m in metrics] == [0, 0, 0, 0, 0, 1, 0, 0]


def test_a_fresh_skip_state_can_be_donated():
  """Donation, as the trainer and benchmarks/step_time.py jit the step, needs a buffer per field."""
  state = stability.init_skip_state(8)
  out = jax.jit(lambda s: jax.tree.map(lambda x: x + 1, s), donate_argnums=0)(state)
  np.testing.assert_array_equal(out.num_seen, 1)
  assert state.num_seen.is_deleted() and state.consecutive.is_deleted()  # donated, not copied


def test_many_consecutive_skips_stop_with_one_line(tmp_path, tiny_config, monkeypatch):
  monkeypatch.setitem(losses.LOSSES._entries, "nan_late",
                      _scaled_elbo(lambda s: jnp.where(s >= 12, np.nan, 1.0)))
  c = tiny_config(loss="nan_late", skip_updates=True, skip_window=5, max_consecutive_skips=5,
                  num_train_steps=40, checkpoint_every=10)
  with pytest.raises(UserError, match=r"updates in a row were skipped .* up to step 20"):
    trainer.train_and_evaluate(c, tmp_path / "run")
  train_rows = [r for r in metrics_log.read(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
  assert train_rows[-1]["skipped"] == pytest.approx(0.8)  # steps 12..19 of 11..20 skipped -> 8 of 10
  assert np.isfinite(train_rows[-1]["loss"])  # the mean over the applied steps


def _test_neg_elbo(run, params) -> float:
  """The `elbo` evaluator on the run's test split with `params`, set up as the trainer does."""
  from vae_jax import data, evaluators, parallel
  config = run.config
  backend = parallel.make_backend(config.parallel, config.num_devices)
  setup = evaluators.EvalSetup(model=run.model, config=config, loss_fn=losses.get_loss_fn(config),
                               backend=backend, eval_key=trainer.Keys.from_seed(config.seed).eval,
                               batch_size=config.eval_batch_size)
  elbo = evaluators.make_evaluators(["elbo"], setup)["elbo"]
  return float(elbo(backend.replicate(params), data.load_datasets(config.data).test, run.step)["neg_elbo"])


def test_ema_is_checkpointed_resumed_and_used_for_evaluation_and_sampling(tmp_path, tiny_config):
  """An interrupted EMA + skipping run resumes to the same params and EMA as an uninterrupted one;
  sample.py / evaluate restore the EMA, and the final test line is the EMA's."""
  c = tiny_config(ema_decay=0.9, skip_updates=True, skip_window=5, num_train_steps=30)
  full = trainer.train_and_evaluate(c, tmp_path / "full")
  trainer.train_and_evaluate(c, tmp_path / "split", stop_after_step=10)
  split = trainer.train_and_evaluate(c, tmp_path / "split")
  assert split == full
  run_full, run_split = inference.load_trained(tmp_path / "full"), inference.load_trained(tmp_path / "split")
  assert run_full.params_kind == "ema" and run_full.step == 30
  assert _same(run_full.params, run_split.params)
  # The EMA really differs from the raw params, and the test line is the EMA's evaluation.
  from vae_jax import checkpointing
  ckpts = checkpointing.Checkpoints(tmp_path / "full", read_only=True)
  _, raw, kind = ckpts.restore_params(abstract_params=checkpointing.restore_target(run_full.params),
                                      prefer_ema=False)
  ckpts.close()
  assert kind == "raw" and not _same(raw, run_full.params)
  on_ema, on_raw = _test_neg_elbo(run_full, run_full.params), _test_neg_elbo(run_full, raw)
  np.testing.assert_allclose(full["neg_elbo"], on_ema, rtol=1e-6)
  assert abs(on_raw - on_ema) > 1e-3 * abs(on_ema), (on_raw, on_ema)


def test_turning_the_ema_on_when_resuming_is_refused_without_damage(tmp_path, tiny_config):
  wd = tmp_path / "run"
  trainer.train_and_evaluate(tiny_config(num_train_steps=10), wd)
  before = sorted(p.name for p in (wd / "checkpoints").iterdir())
  with pytest.raises(UserError, match="ema_decay: 0.0 -> 0.99"):
    trainer.train_and_evaluate(tiny_config(num_train_steps=20, ema_decay=0.99), wd)
  assert sorted(p.name for p in (wd / "checkpoints").iterdir()) == before


@pytest.mark.parametrize("key, value", [("ema_decay", 1.0), ("skip_window", 1), ("skip_quantile", 0.0),
                                        ("skip_factor", 0.0), ("max_consecutive_skips", 0)])
def test_bad_stability_values_are_one_line_errors(key, value):
  c = base_config()
  c[key] = value
  assert stability.validate(c) and key in stability.validate(c)[0]


def test_a_log_interval_of_only_skipped_steps_is_not_divergence(tmp_path, tiny_config, monkeypatch):
  """Every step of the log interval 21..30 is skipped (NaN loss), below the consecutive limit: the
  run goes on and finishes with finite parameters; the skip counts say what happened."""
  monkeypatch.setitem(losses.LOSSES._entries, "nan_window",
                      _scaled_elbo(lambda s: jnp.where((s >= 20) & (s < 30), np.nan, 1.0)))
  c = tiny_config(loss="nan_window", skip_updates=True, skip_window=5, max_consecutive_skips=50,
                  num_train_steps=40)
  final = trainer.train_and_evaluate(c, tmp_path / "run")
  rows = [r for r in metrics_log.read(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
  assert [r["skipped"] for r in rows] == [0.0, 0.0, 1.0, 0.0]
  assert rows[-1]["skipped_total"] == 10 and np.isfinite(final["neg_elbo"])
