"""Every config file loads, validates, has the required keys, and builds a model of the right shape."""

import importlib

import jax
import pytest

from conftest import REPO
from vae_jax import config as config_lib
from vae_jax import model as model_lib

NAMES = sorted(p.stem for p in (REPO / "configs").glob("[!_]*.py"))


def load(name):
  return importlib.import_module(f"configs.{name}").get_config()


def test_all_expected_configs_exist():
  assert {"default", "mnist_mlp", "mnist_conv", "fashion_mnist_conv", "cifar10_conv",
          "folder64"} <= set(NAMES)


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


def test_cifar_and_folder_use_a_learned_gaussian():
  for name in ("cifar10_conv", "folder64"):
    c = load(name)
    assert c.model.likelihood == "gaussian" and c.model.learn_std and c.data.dequantize
    assert c.data.channels == 3
