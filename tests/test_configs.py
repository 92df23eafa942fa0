"""Every config file loads, validates, has the required keys, and builds a model of the right shape."""

import importlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from vae_jax import config as config_lib
from vae_jax import model as model_lib
from vae_jax import train_step as step_lib

NAMES = sorted(p.stem for p in (REPO / "configs").glob("[!_]*.py"))


def load(name):
  return importlib.import_module(f"configs.{name}").get_config()


def test_the_readme_lists_exactly_the_config_files():
  """Every file in configs/ has a row in the README's config table, and every row names a file."""
  text = (REPO / "README.md").read_text()
  rows = [line.split("|")[1] for line in text.splitlines()
          if line.startswith("| `") and ".py`" in line.split("|")[1]]
  listed = {name for row in rows for name in re.findall(r"`(\w+)\.py`", row)}
  assert listed == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_is_complete_and_builds(name):
  c = load(name)
  for key in ("num_train_steps", "batch_size", "seed"):
    assert isinstance(c[key], int)
  assert isinstance(c.data.dir, str)
  config_lib.validate(c)
  # Every config has exactly the base schema's keys (variants override, never invent).
  assert set(c.to_dict()) == set(config_lib.base_config().to_dict())
  shape = (c.data.image_size, c.data.image_size, c.data.channels)
  model = model_lib.make_model(c, shape)
  params = jax.eval_shape(lambda: model_lib.init(model, jax.random.key(0), shape))
  keys = jax.random.split(jax.random.key(0), 2)
  y = model_lib.example_labels(model, 2)
  mean = jax.eval_shape(lambda p: model_lib.generate(p, keys, model=model, y=y).p_x.mean, params)
  assert mean.shape == (2, *shape)  # prior samples are images of the data's shape


def test_mnist_mlp_is_the_flax_example_model():
  """784 -> 500 ReLU -> 2x20 encoder; 20 -> 500 ReLU -> 784 logits decoder; Adam 1e-3; batch 128."""
  c = load("mnist_mlp")
  model = model_lib.make_model(c, (28, 28, 1))
  params = jax.eval_shape(lambda: model_lib.init(model, jax.random.key(0), (28, 28, 1)))
  shapes = {"/".join(str(k.key) for k in path): leaf.shape
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
  assert shapes == {
      "encoder/Dense_0/kernel": (784, 500), "encoder/Dense_0/bias": (500,),
      "encoder/Dense_1/kernel": (500, 40), "encoder/Dense_1/bias": (40,),
      "decoder/Dense_0/kernel": (20, 500), "decoder/Dense_0/bias": (500,),
      "decoder/Dense_1/kernel": (500, 784), "decoder/Dense_1/bias": (784,),
  }
  assert c.batch_size == 128 and c.loss == "elbo"  # the example's batch and objective
  # Adam at a constant 1e-3, unclipped: under a constant gradient g every Adam step is
  # -lr * g / (|g| + eps) = -1e-3 * sign(g), however large g is (a clip or a schedule would change it).
  optimizer = step_lib.make_optimizer(c)
  g = {"w": jnp.asarray([3e3, -2.0, 5e-3], jnp.float32)}
  opt_state = optimizer.init(g)
  for _ in range(3):
    updates, opt_state = optimizer.update(g, opt_state, g)
    np.testing.assert_allclose(updates["w"], [-1e-3, 1e-3, -1e-3], rtol=1e-4)
  # Dynamic binarisation: a pixel of value k is 1 with probability k / 255.
  k = jnp.full((4000, 28, 28, 1), 64, jnp.uint8)
  x = np.asarray(model_lib.model_input(k, jax.random.split(jax.random.key(0), 4000), model=model))
  assert set(np.unique(x)) == {0.0, 1.0} and abs(x.mean() - 64 / 255) < 0.002


@pytest.mark.parametrize("name", ["cifar10_conv", "folder64"])
def test_colour_configs_learn_sigma_per_channel_on_dequantised_pixels(name):
  """The colour configs learn one sigma per RGB channel (a (3,) parameter that log p(x) depends
  on), and dequantise: each uint8 value k enters as a point of its bin [k/256, (k+1)/256), so their
  bits/dim bound the 8-bit data's."""
  c = load(name)
  shape = (c.data.image_size, c.data.image_size, c.data.channels)
  model = model_lib.make_model(c, shape)
  params = model_lib.init(model, jax.random.key(0), shape)
  k = np.random.default_rng(0).integers(0, 256, (2, *shape))
  keys = jax.random.split(jax.random.key(1), 2)
  x = np.asarray(model_lib.model_input(jnp.asarray(k, jnp.uint8), keys, model=model), np.float64)
  assert np.all(x >= k / 256) and np.all(x < (k + 1) / 256) and len(np.unique(x - k / 256)) > 100
  log_std = params["likelihood"]["log_std"]
  loc = jnp.full((2, *shape), 0.5)

  def log_p(s):
    p_x = model.likelihood.apply({"params": {"log_std": s}}, loc)
    return p_x.log_prob(jnp.asarray(x, jnp.float32)).sum()

  # d/ds_c sum log N(x; loc, e^{s_c}) = sum over channel c's pixels of (x - loc)^2 e^{-2 s_c} - 1:
  # each channel's sigma sees its own pixels only.
  s = np.asarray([-2.3, -1.0, 0.2], np.float32)
  want = (np.square(x - 0.5) * np.exp(-2.0 * s.astype(np.float64)) - 1.0).sum(axis=(0, 1, 2))
  assert log_std.shape == (3,)
  np.testing.assert_allclose(jax.grad(log_p)(jnp.asarray(s)), want, rtol=1e-4)
