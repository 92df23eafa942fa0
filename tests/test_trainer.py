"""The training loop end to end, in process: parallel equivalence, resumption, checkpoints, outputs."""

from pathlib import Path

import jax
import numpy as np
import pytest

from vae_jax import checkpointing, inference, metrics_log, trainer
from vae_jax.errors import UserError


def final_params(workdir: Path):
  return jax.device_get(inference.load_trained(workdir).params)


def max_abs_diff(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_pmap_and_jit_match_one_device(tmp_path, tiny_config):
  """Same global batch, same seed: pmap and jit over 4 devices end where 1 device does."""
  runs = {}
  for parallel, n in [("pmap", 1), ("pmap", 4), ("jit", 4), ("jit", 2)]:
    wd = tmp_path / f"{parallel}{n}"
    trainer.train_and_evaluate(tiny_config(parallel=parallel, num_devices=n, num_train_steps=12), wd)
    runs[(parallel, n)] = final_params(wd)
  ref = runs[("pmap", 1)]
  for key, params in runs.items():
    assert max_abs_diff(params, ref) < 2e-5, key


def test_interrupted_run_resumes_to_the_same_parameters(tmp_path, tiny_config):
  config = tiny_config()
  trainer.train_and_evaluate(config, tmp_path / "straight")
  trainer.train_and_evaluate(config, tmp_path / "resumed", stop_after_step=17)
  assert checkpointing.Checkpoints(tmp_path / "resumed").steps()[-1] == 17
  trainer.train_and_evaluate(config, tmp_path / "resumed")
  a, b = final_params(tmp_path / "straight"), final_params(tmp_path / "resumed")
  assert max_abs_diff(a, b) == 0.0
  # A different seed really does give different parameters (the comparison can fail).
  trainer.train_and_evaluate(tiny_config(seed=1), tmp_path / "other")
  assert max_abs_diff(a, final_params(tmp_path / "other")) > 1e-3


def _corrupt(step_dir: Path) -> None:
  for f in (step_dir / "params").rglob("*"):
    if f.is_file():
      f.write_bytes(b"\x00garbage" * 3)


def test_unreadable_newest_checkpoint_falls_back_and_is_kept(tmp_path, tiny_config, capfd):
  config = tiny_config()
  trainer.train_and_evaluate(config, tmp_path / "straight")
  wd = tmp_path / "run"
  trainer.train_and_evaluate(config, wd, stop_after_step=20)  # checkpoints 10 and 20
  _corrupt(wd / "checkpoints" / "20")
  capfd.readouterr()
  trainer.train_and_evaluate(config, wd)
  err = capfd.readouterr().err
  assert "warning: checkpoint at step 20" in err and "falling back to step 10" in err
  assert list((wd / "checkpoints").glob("20.unreadable-*")), "the bad checkpoint is moved aside, not deleted"
  assert max_abs_diff(final_params(tmp_path / "straight"), final_params(wd)) == 0.0


def test_all_checkpoints_unreadable_is_one_clear_error(tmp_path, tiny_config):
  wd = tmp_path / "run"
  trainer.train_and_evaluate(tiny_config(num_train_steps=10), wd)
  _corrupt(wd / "checkpoints" / "10")
  with pytest.raises(UserError, match="no readable checkpoint"):
    inference.load_trained(wd)


def test_outputs_metrics_grids_and_final_eval(tmp_path, tiny_config):
  wd = tmp_path / "run"
  final = trainer.train_and_evaluate(tiny_config(eval_every=10, sample_every=20), wd)
  records = metrics_log.read(wd / "metrics.jsonl")
  tests = [r for r in records if r["split"] == "test"]
  assert [r["step"] for r in tests] == [10, 20, 30]  # periodic, and always at the end
  for r in tests:
    assert r["neg_elbo"] == pytest.approx(r["recon"] + r["kl"], rel=1e-5)
    assert r["num_examples"] == 150  # every test example once, though 150 % 100 != 0
  assert tests[-1]["neg_elbo"] == pytest.approx(final["neg_elbo"])
  trains = [r for r in records if r["split"] == "train"]
  assert [r["step"] for r in trains] == [10, 20, 30] and all(r["images_per_s"] > 0 for r in trains)
  names = sorted(p.name for p in (wd / "samples").iterdir())
  assert names == ["step_0000020_prior.png", "step_0000020_recon.png",
                   "step_0000030_prior.png", "step_0000030_recon.png"]


def test_evaluation_is_exact_mean_over_the_test_set(tmp_path, tiny_config):
  """The padded, sharded evaluation (loss and elbo evaluators) equals a plain per-example loop over the split."""
  from vae_jax import data, evaluators, losses, train_step, parallel
  config = tiny_config(num_train_steps=5, evaluators=("loss", "elbo"))
  wd = tmp_path / "run"
  trainer.train_and_evaluate(config, wd)
  run = inference.load_trained(wd)
  test = data.load_datasets(config.data).test
  keys = trainer.Keys.from_seed(config.seed)
  backend = parallel.make_backend("pmap", 4)
  setup = evaluators.EvalSetup(model=run.model, config=config, loss_fn=losses.get_loss_fn(config),
                               backend=backend, eval_key=keys.eval, batch_size=100)
  got = {name: evaluator(backend.replicate(run.params), test, 5)
         for name, evaluator in evaluators.make_evaluators(("loss", "elbo"), setup).items()}
  images = np.stack([test[i] for i in range(len(test))])
  example_keys = train_step.example_keys(keys.eval, np.arange(len(test)))
  terms = losses.elbo_terms(run.params, {"image": images}, example_keys, model=run.model,
                            config=config)
  for name in ("loss", "elbo"):
    assert got[name]["num_examples"] == len(test) == 150
    assert got[name]["neg_elbo"] == pytest.approx(float(np.mean(terms["neg_elbo"])), rel=1e-5)
    assert got[name]["kl"] == pytest.approx(float(np.mean(terms["kl"])), rel=1e-5)
  # The run's own final test line is the same evaluation.
  final = [r for r in metrics_log.read(wd / "metrics.jsonl") if r["split"] == "test"][-1]
  assert final["neg_elbo"] == pytest.approx(got["loss"]["neg_elbo"], rel=1e-6)


def test_resume_with_a_different_model_is_refused_without_damage(tmp_path, tiny_config):
  wd = tmp_path / "run"
  trainer.train_and_evaluate(tiny_config(num_train_steps=10), wd)
  before = sorted((p.relative_to(wd), p.stat().st_size) for p in wd.rglob("*") if p.is_file())
  with pytest.raises(UserError, match="model"):
    trainer.train_and_evaluate(tiny_config(num_train_steps=20, **{"model.latent_dim": 6}), wd)
  after = sorted((p.relative_to(wd), p.stat().st_size) for p in wd.rglob("*") if p.is_file())
  assert before == after


def test_learns_on_real_mnist_subset(tmp_path, tiny_config, mnist_dir):
  """On real MNIST digits the test negative ELBO falls far below where training started."""
  config = tiny_config(**{"data.name": "mnist", "data.dir": str(mnist_dir),
                          "data.num_train_examples": 4096, "data.num_test_examples": 500,
                          "model.hidden": (128,), "model.latent_dim": 8, "batch_size": 64,
                          "num_train_steps": 300, "checkpoint_every": 300, "log_every": 5})
  wd = tmp_path / "mnist"
  final = trainer.train_and_evaluate(config, wd)
  first = [r for r in metrics_log.read(wd / "metrics.jsonl") if r["split"] == "train"][0]
  # 784 log 2 = 543 nats is a coin-flip model; the first steps sit near it.
  assert first["neg_elbo"] > 300, first
  assert final["neg_elbo"] < 170 and final["neg_elbo"] < 0.5 * first["neg_elbo"], final


def test_steps_per_call_does_not_change_the_result(tmp_path, tiny_config):
  """Scanning several steps in one call is the same computation as one step per call."""
  trainer.train_and_evaluate(tiny_config(steps_per_call=1, num_train_steps=20), tmp_path / "one")
  trainer.train_and_evaluate(tiny_config(steps_per_call=7, num_train_steps=20), tmp_path / "seven")
  assert max_abs_diff(final_params(tmp_path / "one"), final_params(tmp_path / "seven")) < 1e-6


def test_image_folder_with_conv_and_learned_gaussian(tmp_path, tiny_config):
  """The folder64 path, shrunk: mixed-size RGB/gray files -> conv VAE with a learned sigma."""
  from PIL import Image
  rng = np.random.default_rng(0)
  folder = tmp_path / "images"
  (folder / "sub").mkdir(parents=True)
  for i in range(40):
    size = (int(rng.integers(20, 50)), int(rng.integers(20, 50)))
    pixels = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
    img = Image.fromarray(pixels).convert("L" if i % 3 == 0 else "RGB")
    img.save(folder / ("sub" if i % 2 else "") / f"im{i}.{'png' if i % 4 else 'jpg'}")
  config = tiny_config(**{
      "data.name": "folder", "data.dir": str(folder), "data.image_size": 16, "data.channels": 3,
      "data.test_fraction": 0.2, "model.encoder": "conv", "model.decoder": "conv",
      "model.channels": (8, 16), "model.kernel": 3, "model.likelihood": "gaussian",
      "model.learn_std": True, "batch_size": 8, "eval_batch_size": 8, "steps_per_call": 1,
      "num_train_steps": 10})
  final = trainer.train_and_evaluate(config, tmp_path / "run")
  run = inference.load_trained(tmp_path / "run")
  # Learned per channel: on uniform-noise pixels the residuals' mean square (>= 1/12 for any mean)
  # far exceeds sigma^2 = 0.01, so d log p / d log sigma_c = sum (r^2 / sigma_c^2 - 1) > 0 in every
  # channel, and each of the 10 Adam steps (lr 1e-3) raises log sigma_c by about 1e-3 (m / sqrt(v)
  # <= sqrt(10 sum_i w_i^2) ~ 1.1 over 10 steps of same-sign gradients: 1.2 allows for it).
  rise = np.asarray(run.params["likelihood"]["log_std"]) - np.log(0.1)
  assert rise.shape == (3,) and np.all(rise > 0.5 * 10 * 1e-3) and np.all(rise <= 1.2 * 10 * 1e-3), rise
  assert 0 < final["num_examples"] < 40 and np.isfinite(final["neg_elbo"])
  # Dequantised Gaussian bits/dim adds D log 256 nats before converting (README conventions).
  d = 16 * 16 * 3
  assert final["bits_per_dim"] == pytest.approx((final["neg_elbo"] + d * np.log(256)) / (d * np.log(2)))


def test_training_loop_traces_the_step_once(tmp_path, tiny_config, monkeypatch):
  """Across many calls, evaluations and checkpoints, the train step is traced once and the loss
  evaluator (which runs the same loss on masked test batches) once."""
  from vae_jax import losses
  from vae_jax import train_step as step_lib
  traces = {"train": 0, "eval": 0}

  def counting_loss(params, batch, *args, **kwargs):
    if "mask" in batch:  # Python side effect: runs only while tracing
      traces["eval"] += 1
    return losses.elbo_loss(params, batch, *args, **kwargs)

  def counting_steps(*args, **kwargs):
    traces["train"] += 1
    return original(*args, **kwargs)

  original = step_lib.train_steps
  monkeypatch.setattr(step_lib, "train_steps", counting_steps)
  monkeypatch.setitem(losses.LOSSES._entries, "counting", counting_loss)
  trainer.train_and_evaluate(
      tiny_config(loss="counting", steps_per_call=5, num_train_steps=40, eval_every=10,
                  sample_every=20), tmp_path)
  assert traces == {"train": 1, "eval": 1}
  assert len([r for r in metrics_log.read(tmp_path / "metrics.jsonl") if r["split"] == "test"]) == 4


def test_divergence_stops_with_one_clear_error_and_keeps_checkpoints(tmp_path, tiny_config):
  wd = tmp_path / "run"
  trainer.train_and_evaluate(tiny_config(num_train_steps=10), wd)
  with pytest.raises(UserError, match="diverged.*step 10.*is intact"):
    trainer.train_and_evaluate(tiny_config(num_train_steps=40, learning_rate=1e6), wd,
                               allow_config_changes=True)
  assert checkpointing.Checkpoints(wd).steps() == [10]


def test_curves_and_tensorboard_follow_the_metrics(tmp_path, tiny_config):
  """At each evaluation DIR/curves.png is redrawn; with tensorboard=True every metrics row is
  also a set of TensorBoard scalars at its step."""
  from test_curves import read_scalars
  wd = tmp_path / "run"
  trainer.train_and_evaluate(tiny_config(eval_every=10, tensorboard=True), wd)
  assert (wd / "curves.png").is_file()
  rows = metrics_log.read(wd / "metrics.jsonl")
  scalars = read_scalars(wd / "tensorboard")
  for split in ("train", "test"):
    want = [(r["step"], pytest.approx(r["neg_elbo"], rel=1e-6)) for r in rows if r["split"] == split]
    assert [(step, value) for step, value in scalars[f"{split}/neg_elbo"]] == want


def test_no_retrace_for_unaligned_step_counts_or_resume_points(tmp_path, tiny_config, monkeypatch):
  """42 steps at 5 per call, stopped at 17 and resumed: each process traces the step once (calls of
  5, 5, 5, 2, then 3, 5, ..., 2), and ends where an uninterrupted run and a one-step-per-call run do."""
  from vae_jax import train_step as step_lib
  traces = []
  original = step_lib.train_steps

  def counting(*args, **kwargs):
    traces.append(1)
    return original(*args, **kwargs)
  monkeypatch.setattr(step_lib, "train_steps", counting)
  config = tiny_config(num_train_steps=42, steps_per_call=5, log_every=7)
  wd = tmp_path / "resumed"
  trainer.train_and_evaluate(config, wd, stop_after_step=17)
  assert len(traces) == 1
  traces.clear()
  trainer.train_and_evaluate(config, wd)
  assert len(traces) == 1
  trainer.train_and_evaluate(config, tmp_path / "straight")
  trainer.train_and_evaluate(tiny_config(num_train_steps=42, steps_per_call=1, log_every=7), tmp_path / "single")
  resumed = final_params(wd)
  assert max_abs_diff(resumed, final_params(tmp_path / "straight")) == 0.0
  assert max_abs_diff(resumed, final_params(tmp_path / "single")) < 2e-5
  rows = [r["step"] for r in metrics_log.read(wd / "metrics.jsonl") if r["split"] == "train"]
  assert rows == [10, 15, 17, 25, 30, 35, 42]  # the call that crosses each multiple of 7, and the stops


def test_each_train_row_is_read_after_the_next_call_is_dispatched(tmp_path, tiny_config, monkeypatch):
  """The host waits for step t's metrics only once the call after it is running (or at the end)."""
  calls, reads = [], []
  dispatch, host_mean = trainer.dispatch, trainer._host_mean

  def counting_dispatch(*args, **kwargs):
    calls.append(1)
    return dispatch(*args, **kwargs)

  def recording_mean(metrics, backend):
    reads.append((len(calls), sum(n for _, n in metrics)))
    return host_mean(metrics, backend)
  monkeypatch.setattr(trainer, "dispatch", counting_dispatch)
  monkeypatch.setattr(trainer, "_host_mean", recording_mean)
  trainer.train_and_evaluate(tiny_config(num_train_steps=50, steps_per_call=10, log_every=10,
                                         checkpoint_every=30), tmp_path / "run")
  # rows at 10, 20 read after calls 2, 3; the row at 30 at once (a checkpoint is due); 40 after
  # call 5; 50 at the end. Each row covers the 10 steps since the last.
  assert reads == [(2, 10), (3, 10), (3, 10), (5, 10), (5, 10)]
  rows = [r["step"] for r in metrics_log.read(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
  assert rows == [10, 20, 30, 40, 50]


def test_max_train_s_ends_the_run_at_the_budget_with_its_final_evaluation(tmp_path, capsys):
  from conftest import tiny_config
  config = tiny_config(num_train_steps=10**6, max_train_s=4.0, steps_per_call=1, log_every=10**6,
                       checkpoint_every=10**6)
  final = trainer.train_and_evaluate(config, tmp_path / "run")
  rows = metrics_log.read(tmp_path / "run" / "metrics.jsonl")
  train = [r for r in rows if r["split"] == "train"]
  last_test = [r for r in rows if r["split"] == "test"][-1]
  assert 0 < last_test["step"] < 10**6 and final["neg_elbo"] == last_test["neg_elbo"]
  # The last steps get a row (no log was due), whose training time is just past the budget.
  assert train[-1]["step"] == last_test["step"] and 4.0 <= train[-1]["train_s"] < 6.0
  assert "reached max_train_s=4" in capsys.readouterr().err
  assert checkpointing.Checkpoints(tmp_path / "run", read_only=True).steps()[-1] == last_test["step"]


def test_train_s_of_a_test_row_counts_the_steps_since_the_last_train_row(tmp_path):
  from conftest import tiny_config
  # Evaluations every 4 steps, train rows every 10: an evaluation's train_s must still grow.
  config = tiny_config(num_train_steps=12, steps_per_call=1, log_every=10, eval_every=4, checkpoint_every=100)
  trainer.train_and_evaluate(config, tmp_path / "run")
  rows = metrics_log.read(tmp_path / "run" / "metrics.jsonl")
  test_s = [r["train_s"] for r in rows if r["split"] == "test"]
  train = {r["step"]: r["train_s"] for r in rows if r["split"] == "train"}
  assert len(test_s) == 3 and 0 < test_s[0] < test_s[1] < test_s[2]
  assert test_s[1] <= train[10] <= test_s[2]


def _set_checkpoint_clock(workdir: Path, step: int, train_s: float | None) -> None:
  """Rewrites checkpoint `step`'s recorded training seconds (None: as an older version saved it)."""
  import json
  path = workdir / "checkpoints" / str(step) / "step" / "metadata"
  record = json.loads(path.read_text())
  assert record["step"] == step and 0 < record["train_s"] < 600  # what this run saved: its own seconds
  record.pop("train_s")
  if train_s is not None:
    record["train_s"] = train_s
  path.write_text(json.dumps(record))


def test_a_resumed_run_s_clock_goes_on_from_its_checkpoint(tmp_path):
  """train_s counts the run's training across processes: a resume starts from the checkpoint's."""
  import time
  from conftest import tiny_config
  config = tiny_config(num_train_steps=20)
  trainer.train_and_evaluate(config, tmp_path / "run", stop_after_step=10)
  _set_checkpoint_clock(tmp_path / "run", 10, 1000.0)  # as if the first 10 steps had taken 1000 s
  t0 = time.perf_counter()
  trainer.train_and_evaluate(config, tmp_path / "run")
  wall = time.perf_counter() - t0
  rows = [r for r in metrics_log.read(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
  assert [r["step"] for r in rows] == [10, 20]
  assert 1000.0 < rows[1]["train_s"] < 1000.0 + wall
  saved = checkpointing.Checkpoints(tmp_path / "run", read_only=True).restore_train(
      abstract_params=None, abstract_opt_state=None)
  assert saved.step == 20 and rows[1]["train_s"] <= saved.train_s < 1000.0 + wall


def test_a_checkpoint_without_a_clock_resumes_from_zero_with_a_warning(tmp_path, capsys):
  from conftest import tiny_config
  config = tiny_config(num_train_steps=20)
  trainer.train_and_evaluate(config, tmp_path / "run", stop_after_step=10)
  _set_checkpoint_clock(tmp_path / "run", 10, None)
  capsys.readouterr()
  trainer.train_and_evaluate(config, tmp_path / "run")
  assert "checkpoint 10 does not record the run's training time" in capsys.readouterr().err
  rows = [r for r in metrics_log.read(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
  assert rows[1]["step"] == 20 and 0 < rows[1]["train_s"] < 600


def test_max_train_s_is_the_run_s_budget_across_resumes(tmp_path, capsys):
  """A run resumed past its budget trains no step: it evaluates once, then says it is finished."""
  from conftest import tiny_config
  config = tiny_config(num_train_steps=1000, max_train_s=500.0)
  trainer.train_and_evaluate(config, tmp_path / "run", stop_after_step=10)
  _set_checkpoint_clock(tmp_path / "run", 10, 600.0)
  capsys.readouterr()
  final = trainer.train_and_evaluate(config, tmp_path / "run")
  assert "stopped at step 10: 600 s of training reached max_train_s=500" in capsys.readouterr().err
  tests = [r for r in metrics_log.read(tmp_path / "run" / "metrics.jsonl") if r["split"] == "test"]
  assert [r["step"] for r in tests] == [10] and tests[0]["neg_elbo"] == final["neg_elbo"]
  assert checkpointing.Checkpoints(tmp_path / "run", read_only=True).steps() == [10]
  again = trainer.train_and_evaluate(config, tmp_path / "run")
  assert again == tests[0] and "raise --config.max_train_s to train further" in capsys.readouterr().err
  rows = metrics_log.read(tmp_path / "run" / "metrics.jsonl")
  assert [r["step"] for r in rows if r["split"] == "test"] == [10]
