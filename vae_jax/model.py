"""Pure functions over any registered model (see `models/base.py` for the contract).

Each wraps `model.apply` on an explicit params pytree:

  make_model(config, image_shape)         the module `config.model.name` names
  init(model, rng, image_shape)           initial params from one key
  model_input(image, keys_B, model=)      uint8 -> x in [0, 1]: the likelihood's input transform
  encode(params, x, model=, y=)           the deterministic part of inference
  infer(params, context, keys_B, ...)     posterior draws of every group and p(x|z)
  decode(params, zs, model=, y=)          p(x|z) at given groups
  generate(params, keys_B, ...)           prior draws of every group and p(x|z)
  reconstruct(params, x, model=, y=)      p(x|z) at the posterior's zero-noise path
  prior_sample(params, rng, num, ...)     p(x|z) at a prior draw from one key

The model never computes a loss; objectives (`losses.py`) read its groups.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax.errors import UserError
from vae_jax.models import MODELS, Generated, Inference, LatentModel
from vae_jax.models.vae import VAE  # noqa: F401  (callers that name the one-group model's type)


def make_model(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> LatentModel:
  """Builds the model `config.model` describes, for images of `image_shape` (H, W, C)."""
  cls = MODELS.get(config.model.name)
  if not (isinstance(cls, type) and issubclass(cls, LatentModel)):
    raise UserError(f"model {config.model.name!r} is not a vae_jax.models.LatentModel subclass")
  return cls.from_config(config, tuple(image_shape))


def example_labels(model: LatentModel, num: int) -> jax.Array | None:
  """Placeholder labels for shape-only calls (init): zeros for a conditional model, else None."""
  return jnp.zeros((num,), jnp.int32) if getattr(model, "num_classes", 0) > 0 else None


def init(model: LatentModel, rng: jax.Array, image_shape: tuple[int, int, int]):
  """Initial params for `model`, from one key."""
  params_rng, sample_rng = jax.random.split(rng)
  x = jnp.zeros((1, *image_shape), jnp.float32)
  return model.init(params_rng, x, jax.random.split(sample_rng, 1), example_labels(model, 1))["params"]


def model_input(image_BHWC: jax.Array, keys_B: jax.Array, *, model: LatentModel) -> jax.Array:
  """The likelihood's input transform: uint8 [B, H, W, C] -> float x in [0, 1]."""
  return model.likelihood.model_input(image_BHWC, keys_B)


def encode(params, x_BHWC: jax.Array, *, model: LatentModel, y: jax.Array | None = None):
  return model.apply({"params": params}, x_BHWC, y, method=model.encode)


def infer(params, context, keys_B: jax.Array, *, model: LatentModel, y: jax.Array | None = None,
          sample: int | jax.Array = 0, temperature=1.0) -> Inference:
  return model.apply({"params": params}, context, keys_B, y, sample, temperature, method=model.infer)


def decode(params, zs, *, model: LatentModel, y: jax.Array | None = None):
  if not isinstance(zs, (tuple, list)):  # one group given as an array
    zs = (zs,)
  return model.apply({"params": params}, tuple(zs), y, method=model.decode)


def generate(params, keys_B: jax.Array, *, model: LatentModel, y: jax.Array | None = None,
             temperature=1.0) -> Generated:
  return model.apply({"params": params}, keys_B, y, temperature, method=model.generate)


def reconstruct(params, x_BHWC: jax.Array, *, model: LatentModel, y: jax.Array | None = None):
  """p(x|z) with every group at its posterior mean given the groups above (zero noise)."""
  keys_B = jax.random.split(jax.random.key(0), x_BHWC.shape[0])  # unused at temperature 0
  context = encode(params, x_BHWC, model=model, y=y)
  return infer(params, context, keys_B, model=model, y=y, temperature=0.0).p_x


def prior_sample(params, rng: jax.Array, num: int, *, model: LatentModel, temperature=1.0,
                 y: jax.Array | None = None):
  """p(x|z) for z drawn from the prior at `temperature` (< 1 trades diversity for fidelity)."""
  return generate(params, jax.random.split(rng, num), model=model, y=y, temperature=temperature).p_x
