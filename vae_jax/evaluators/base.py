"""Evaluators: reductions of a trained model over a whole split, chosen by name.

An evaluator is a class built once per run from an `EvalSetup` (so its jitted
functions compile once) and called as `evaluator(params, source, step)`,
returning a dict of floats. Every example of the split is seen exactly once
(the last batch is padded and masked), and each example's randomness comes
from `example_keys(eval_key, its index)`: the fixed test binarisation and
draws are the same in every evaluation, for every evaluator, on any device
count.

Adding one: a file with a class taking an `EvalSetup`, and one line in
`evaluators/__init__.py` (or name it as 'package.module:Class').
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import data
from vae_jax.data.source import first_index
from vae_jax import parallel
from vae_jax.registry import Registry
from vae_jax.train_step import example_keys

EVALUATORS: Registry[Callable[["EvalSetup"], Callable]] = Registry("evaluator")


@dataclasses.dataclass(frozen=True)
class EvalSetup:
  """What every evaluator may use: the model, the run's config and loss, devices, the eval key."""

  model: Any
  config: ml_collections.ConfigDict
  loss_fn: Callable
  backend: parallel.Backend
  eval_key: jax.Array  # the run's evaluation key (host value)
  batch_size: int  # global


def indexed_batches(source, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Padded batches of the whole split with each example's index in it, this process's rows.

  The index is the example's place in its split, also for a `Window` of it.
  """
  rows = parallel.process_slice(batch_size)
  first = first_index(source)
  for i, batch in enumerate(data.eval_batches(source, batch_size)):
    batch = dict(batch, index=np.arange(first + i * batch_size, first + (i + 1) * batch_size, dtype=np.int32))
    yield {k: v[rows] for k, v in batch.items()}


def keys_for(batch: dict, eval_key: jax.Array) -> jax.Array:
  """One key per example, from its index in the split."""
  return example_keys(eval_key, batch["index"])


def masked_sums(values: dict[str, jax.Array], mask_B: jax.Array, axis_name: str | None) -> dict:
  """sum_b mask_b v_b for each per-example value [B], and the count; summed over devices."""
  mask = mask_B.astype(jnp.float32)
  sums = {k: jnp.sum(v * mask) for k, v in values.items()}
  sums["count"] = jnp.sum(mask)
  return jax.lax.psum(sums, axis_name) if axis_name is not None else sums


def sum_over_split(batch_fn: Callable, source, setup: EvalSetup) -> dict[str, np.ndarray]:
  """Totals over the split of `batch_fn(sharded_batch)`'s replicated sums, as float64 on the host."""
  totals = None
  for batch in indexed_batches(source, setup.batch_size):
    sums = batch_fn(setup.backend.shard_batch(batch))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  host = jax.device_get(setup.backend.unreplicate(totals))
  return {k: np.asarray(v, np.float64) for k, v in host.items()}


def means(totals: dict[str, np.ndarray]) -> dict[str, float]:
  """Each scalar total divided by the count; `num_examples` is the count."""
  count = float(totals["count"])
  out = {k: float(v) / count for k, v in totals.items() if k != "count"}
  out["num_examples"] = int(count)
  return out


def num_dims(source) -> int:
  return int(np.prod(np.asarray(source[0]).shape))


def run_all(evaluators: dict[str, Callable], params, source, step: int) -> dict[str, float]:
  """Runs each evaluator in order and merges their results (a later key replaces an earlier one)."""
  out: dict[str, float] = {}
  for evaluator in evaluators.values():
    out.update(evaluator(params, source, step))
  return out


def make_evaluators(names, setup: EvalSetup) -> dict[str, Callable]:
  """{name: evaluator} for the registered names (or 'module:Class') in `names`.

  A class with `takes_names = True` is built once, as `cls(setup, names)`, for all the names that
  select it (e.g. fid and kid share one set of generated samples); it appears under the first.
  """
  chosen: dict[str, Callable] = {}
  grouped: dict[type, list[str]] = {}
  for name in names:
    cls = EVALUATORS.get(name)
    if getattr(cls, "takes_names", False):
      if cls not in grouped:
        grouped[cls] = []
        chosen[name] = cls
      grouped[cls].append(name)
    else:
      chosen[name] = cls(setup)
  for name, cls in chosen.items():
    if cls in grouped:
      chosen[name] = cls(setup, grouped[cls])
  return chosen
