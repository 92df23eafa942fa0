"""The pure train and eval steps, written once for any number of devices.

`train_step` is a pure function of (state, batch, rng). Given `axis_name` it
runs inside `jax.pmap` (or `shard_map`) over a named device axis and averages
gradients and metrics with `lax.pmean`; with `axis_name=None` it sees the
global batch and lets `jax.jit` partition it by the batch's sharding. Random
draws depend only on (seed, step, the example's position in the global batch),
so the result does not depend on how the batch is split across devices.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from vae_jax import losses
from vae_jax import stability
from vae_jax.models import LatentModel
from vae_jax.errors import UserError

OPTIMIZERS = ("adam", "adamw", "sgd")


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: the number of optimizer steps taken so far (skipped ones too)
  params: Any
  opt_state: Any
  ema_params: Any = None  # with config.ema_decay > 0: the EMA of params
  skip: stability.SkipState | None = None  # with config.skip_updates


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Optimizer from `config.optimizer`, `learning_rate`, `lr_schedule`, `grad_clip_norm`."""
  if config.lr_schedule == "constant":
    lr = config.learning_rate
  elif config.lr_schedule == "cosine":
    lr = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, max(config.lr_warmup_steps, 0), max(config.num_train_steps, 1))
  else:
    raise UserError(f"unknown lr_schedule {config.lr_schedule!r}; valid: constant, cosine")
  if config.optimizer == "adam":
    opt = optax.adam(lr, b1=config.adam_b1, b2=config.adam_b2)
  elif config.optimizer == "adamw":
    opt = optax.adamw(lr, b1=config.adam_b1, b2=config.adam_b2, weight_decay=config.weight_decay)
  elif config.optimizer == "sgd":
    opt = optax.sgd(lr, momentum=0.9)
  else:
    raise UserError(f"unknown optimizer {config.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
  if config.grad_clip_norm > 0:
    opt = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt)
  return opt


def init_state(params, optimizer: optax.GradientTransformation,
               config: ml_collections.ConfigDict | None = None) -> TrainState:
  """Step 0; with `config`, also the EMA (a copy of params) and the skip state it asks for."""
  ema = skip = None
  if config is not None and config.ema_decay > 0:
    ema = jax.tree.map(jnp.copy, params)
  if config is not None and config.skip_updates:
    skip = stability.init_skip_state(config.skip_window)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                    ema_params=ema, skip=skip)


def example_keys(rng: jax.Array, position_B: jax.Array) -> jax.Array:
  """One key per example: fold_in(rng, position in the global batch or dataset)."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, position_B)


def global_positions(local_batch: int, axis_name: str | None) -> jax.Array:
  """Positions of this device's examples in the global batch: device_index * local_batch + i."""
  offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * local_batch
  return offset + jnp.arange(local_batch)


def train_step(state: TrainState, batch: dict, rng: jax.Array, *,
               loss_fn: losses.LossFn, model: LatentModel,
               config: ml_collections.ConfigDict, optimizer: optax.GradientTransformation,
               axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer update on the batch. `rng` is the run's training key.

  Each device computes the gradient of its shard's mean loss; the pmean over
  devices of equal shard sizes is the gradient of the global mean loss.
  """
  step_rng = jax.random.fold_in(rng, state.step)
  keys_B = example_keys(step_rng, global_positions(batch["image"].shape[0], axis_name))

  def objective(params):
    return loss_fn(params, batch, keys_B, state.step, model=model, config=config)

  (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  metrics = dict(metrics, loss=loss)
  if axis_name is not None and jax.lax.axis_size(axis_name) > 1:
    # Over one device the mean is the identity, but XLA:CPU still copies every gradient.
    grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
  if config.log_grad_norm or config.skip_updates:
    metrics["grad_norm"] = optax.tree.norm(grads)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  skip_state = state.skip
  if config.skip_updates:
    skip, metrics["skip_threshold"], skip_state = stability.decide_skip(
        metrics["grad_norm"], state.skip, quantile=config.skip_quantile, factor=config.skip_factor)
    params, opt_state = stability.keep_if(skip, (state.params, state.opt_state), (params, opt_state))
    metrics["skipped"] = skip.astype(jnp.float32)
  ema = state.ema_params
  if ema is not None:
    ema = stability.ema_update(ema, params, config.ema_decay, state.step)
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema,
                    skip=skip_state), metrics


def train_steps(state: TrainState, batches: dict, rng: jax.Array, num_steps: jax.Array | None = None, *,
                axis_name: str | None = None, **step_kwargs) -> tuple[TrainState, dict[str, jax.Array]]:
  """Several updates in one call: `train_step` over the leading axis of `batches`.

  Fewer dispatches and host round trips per step (`config.steps_per_call`);
  metrics come back stacked, one row per step. The result is the same as
  calling `train_step` once per batch. With `num_steps` (a traced int, 1 <= n <=
  the number of batches) only the first n batches are used and the other rows
  of the metrics are zeros: every call has the same shapes, so a short call (the
  first after resuming at an unaligned step, the last of a run) is not a new
  trace. One batch runs without a loop: XLA:CPU runs convolutions inside a while
  loop about 10x slower (measured with jax 0.10), so the conv configs use
  steps_per_call=1 (README, "Results").
  """
  def body(s, batch):
    return train_step(s, batch, rng, axis_name=axis_name, **step_kwargs)
  num_batches = jax.tree.leaves(batches)[0].shape[0]
  if num_batches == 1:
    state, metrics = body(state, jax.tree.map(lambda x: x[0], batches))
    return state, jax.tree.map(lambda x: x[None], metrics)
  if num_steps is None:
    return jax.lax.scan(body, state, batches)
  # The first step outside the loop gives the metrics' structure for the output rows.
  state, first = body(state, jax.tree.map(lambda x: x[0], batches))
  rows = jax.tree.map(lambda v: jnp.zeros((num_batches, *v.shape), v.dtype).at[0].set(v), first)

  def loop(i, carry):
    s, out = carry
    s, m = body(s, jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, i, keepdims=False), batches))
    return s, jax.tree.map(lambda o, v: jax.lax.dynamic_update_index_in_dim(o, v, i, 0), out, m)
  return jax.lax.fori_loop(1, num_steps, loop, (state, rows))
