"""DCGAN and the gan loss: which network each gradient reaches, R1, per-image generation, the CLI path."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from test_cli import run
from vae_jax import gan_loss
from vae_jax import model as model_lib

GAN = {"model.name": "dcgan", "model.latent_dim": 8, "model.gan_width": 4, "loss": "gan",
       "data.binarize": False, "learning_rate": 2e-4, "adam_b1": 0.5, "steps_per_call": 1}


@pytest.fixture(scope="module")
def gan():
  config = tiny_config(**GAN)
  model = model_lib.make_model(config, (28, 28, 1))
  params = model_lib.init(model, jax.random.key(0), (28, 28, 1))
  images = jax.random.randint(jax.random.key(1), (6, 28, 28, 1), 0, 256).astype(jnp.uint8)
  rng = jax.random.split(jax.random.key(2), 6)
  return config, model, params, {"image": images}, rng


def _grads(params, batch, rng, model, config):
  return jax.grad(lambda p: gan_loss.gan_loss(p, batch, rng, 0, model=model, config=config)[0])(params)


def test_the_discriminator_gets_the_gradient_of_its_loss_and_the_generator_of_its_own(gan):
  config, model, params, batch, rng = gan
  got = _grads(params, batch, rng, model, config)
  # Independently: the two losses of the module doc, each differentiated alone.
  _, z_keys = jax.vmap(lambda k: jax.random.split(k, 2))(rng).transpose(1, 0)
  x_real = batch["image"].astype(jnp.float32) / 255.0

  def d(p, x):
    return model.apply({"params": p}, x, method=model.discriminate)

  def g(p):
    return model_lib.generate(p, z_keys, model=model).p_x.mean
  fake = g(params)

  def loss_d(p):
    return jnp.mean(jax.nn.softplus(-d(p, x_real)) + jax.nn.softplus(d(p, fake)))

  def loss_g(p):
    return jnp.mean(jax.nn.softplus(-d(params, g(p))))
  want_d = jax.grad(loss_d)(params)["discriminator"]
  want_g = jax.grad(loss_g)(params)["generator"]
  for a, b in zip(jax.tree.leaves(got["discriminator"]), jax.tree.leaves(want_d)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
  for a, b in zip(jax.tree.leaves(got["generator"]), jax.tree.leaves(want_g)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_r1_is_the_squared_input_gradient_and_moves_only_the_discriminator(gan):
  config, model, params, batch, rng = gan
  x = batch["image"][:1].astype(jnp.float32) / 255.0

  def d(x_flat):
    return model.apply({"params": params}, x_flat.reshape(-1, 28, 28, 1), method=model.discriminate)
  # ||grad_x d||^2 by central differences along every pixel, in float64 on the host.
  eps = 1e-2
  basis = np.eye(784, dtype=np.float32) * eps
  flat = np.asarray(x).reshape(1, 784)
  diffs = (np.asarray(d(jnp.asarray(flat + basis)), np.float64) -
           np.asarray(d(jnp.asarray(flat - basis)), np.float64)) / (2 * eps)
  r1 = float(gan_loss.r1_penalty(params, x, model=model)[0])
  assert r1 == pytest.approx(np.sum(diffs**2), rel=2e-2)
  with_r1 = tiny_config(**GAN, gan_r1_gamma=10.0)
  a, b = _grads(params, batch, rng, model, config), _grads(params, batch, rng, model, with_r1)
  for u, v in zip(jax.tree.leaves(a["generator"]), jax.tree.leaves(b["generator"])):
    np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-8)
  assert any(not np.allclose(u, v) for u, v in zip(jax.tree.leaves(a["discriminator"]),
                                                   jax.tree.leaves(b["discriminator"])))


def test_an_image_does_not_depend_on_the_rest_of_its_batch(gan):
  _, model, params, _, _ = gan
  keys = jax.random.split(jax.random.key(5), 5)
  together = model_lib.generate(params, keys, model=model).p_x.mean
  alone = model_lib.generate(params, keys[3:4], model=model).p_x.mean
  np.testing.assert_allclose(together[3:4], alone, rtol=1e-5, atol=1e-6)
  assert float(jnp.min(together)) >= 0.0 and float(jnp.max(together)) <= 1.0
  assert not np.allclose(together[0], together[1])


def _args(steps):
  return ["--config=configs/mnist_dcgan.py", "--config.data.name=shapes", "--config.data.shapes_num_train=256",
          "--config.data.shapes_num_test=64", "--config.model.gan_width=4", "--config.model.latent_dim=8",
          "--config.batch_size=16", "--config.eval_batch_size=32", "--config.evaluators=loss",
          f"--config.num_train_steps={steps}", "--config.log_every=2", "--config.eval_every=4",
          "--config.checkpoint_every=4", "--config.sample_every=100", "--config.num_grid_images=4",
          "--config.progress_bar=False"]


def test_train_resume_sample_and_the_refusals_of_a_gan(tmp_path):
  wd = tmp_path / "gan"
  first = run("train.py", f"--workdir={wd}", *_args(4))
  assert "training dcgan (loss gan)" in first.stdout + first.stderr
  run("train.py", f"--workdir={wd}", *_args(8))
  rows = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
  train_steps = [r["step"] for r in rows if r["split"] == "train"]
  assert train_steps == sorted(set(train_steps)) and train_steps[-1] == 8
  assert all(np.isfinite(r["d_loss"]) and 0 < r["d_real"] < 1 for r in rows if r["split"] == "train")
  assert (wd / "samples" / "step_0000008_prior.png").exists()
  assert not list((wd / "samples").glob("*recon*"))
  run("sample.py", f"--workdir={wd}", f"--output={tmp_path / 's.png'}", "--num_samples=4")
  assert (tmp_path / "s.png").exists()
  refused = run("sample.py", f"--workdir={wd}", f"--output={tmp_path / 't.png'}",
                f"--reconstructions={tmp_path / 'r.png'}", check=False)
  assert refused.returncode == 2 and "no encoder" in refused.stderr and "Traceback" not in refused.stderr
  assert not (tmp_path / "t.png").exists()


def test_pmap_and_jit_train_a_gan_to_the_same_parameters(tmp_path):
  from vae_jax import inference, trainer
  params = {}
  for parallel, n in [("jit", 1), ("pmap", 2), ("jit", 2)]:
    wd = tmp_path / f"{parallel}{n}"
    trainer.train_and_evaluate(tiny_config(**GAN, parallel=parallel, num_devices=n, num_train_steps=4,
                                           batch_size=8), wd)
    params[(parallel, n)] = jax.device_get(inference.load_trained(wd).params)
  ref = params[("jit", 1)]
  for key, p in params.items():
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(ref)))
    assert diff < 2e-5, (key, diff)
