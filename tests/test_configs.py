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
  assert (c.model.likelihood, c.data.binarize, c.optimizer, c.learning_rate, c.batch_size) == (
      "bernoulli", True, "adam", 1e-3, 128)
  assert c.lr_schedule == "constant" and c.loss == "elbo" and c.grad_clip_norm == 0


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

  grad = np.asarray(jax.grad(log_p)(log_std))
  assert grad.shape == (3,) and np.all(grad != 0)
