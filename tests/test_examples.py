"""The README's worked example: a user's own loss, named in a config, trains without library edits."""

import jax
import jax.numpy as jnp
import numpy as np

from examples import my_losses
from vae_jax import losses, metrics_log, trainer
from vae_jax import model as model_lib


def test_free_bits_loss_bounds_the_elbo_and_matches_it_when_free_bits_is_zero(tiny_config):
  config = tiny_config()
  model = model_lib.make_model(config, (28, 28, 1))
  params = model_lib.init(model, jax.random.key(0), (28, 28, 1))
  batch = {"image": np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)}
  keys = jax.random.split(jax.random.key(1), 8)
  elbo_loss, elbo_metrics = losses.elbo_loss(params, batch, keys, 0, model=model, config=config)
  config.free_bits = 0.0
  loss0, metrics0 = my_losses.free_bits_elbo(params, batch, keys, 0, model=model, config=config)
  np.testing.assert_allclose(loss0, elbo_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics0["kl"], elbo_metrics["kl"], rtol=1e-5)
  config.free_bits = 5.0  # above any single dimension's KL at init: the penalty is 5 * Z
  loss5, _ = my_losses.free_bits_elbo(params, batch, keys, 0, model=model, config=config)
  assert float(loss5) > float(elbo_loss)
  np.testing.assert_allclose(loss5, metrics0["recon"] + 5.0 * 4, rtol=1e-5)


def test_train_with_a_loss_named_in_the_config(tmp_path, tiny_config):
  config = tiny_config(loss="examples.my_losses:free_bits_elbo", num_train_steps=20)
  config.free_bits = 1.0
  trainer.train_and_evaluate(config, tmp_path)
  trains = [r for r in metrics_log.read(tmp_path / "metrics.jsonl") if r["split"] == "train"]
  assert trains and all(r["loss"] >= r["neg_elbo"] - 1e-3 for r in trains)
  assert jnp.isfinite(trains[-1]["loss"])


def test_sample_a_run_whose_config_added_its_own_key(tmp_path, tiny_config):
  """sample.py's loader keeps keys that a user's config added (here `free_bits`)."""
  from vae_jax import inference
  config = tiny_config(loss="examples.my_losses:free_bits_elbo", num_train_steps=10)
  config.free_bits = 0.5
  trainer.train_and_evaluate(config, tmp_path)
  run = inference.load_trained(tmp_path)
  assert run.config.free_bits == 0.5 and run.config.model.hidden == (32,) and run.step == 10
  inference.write_prior_samples(run, tmp_path / "s.png", num=4, seed=0, temperature=1.0)
  assert (tmp_path / "s.png").exists()
