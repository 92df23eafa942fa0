"""Orbax checkpoints: one Composite item per part of the training state.

Items: `params`, `opt_state` (pytrees), `rng` (the run's key data), `step`
and `data` (the data iterator's state, JSON), and where the run keeps them
`ema_params` and `skip` (the update-skipping state). Keeping them apart lets
`sample.py` restore `params` (or `ema_params`) alone, on any device, whatever
device count trained them. Parameters are saved unreplicated (host-side
values).

When the newest checkpoint cannot be read, we warn in one line and fall back
to the previous readable one; a trainer moves the unreadable one aside
(renamed, never deleted) so the run can save that step again.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from vae_jax.errors import UserError, one_line

ITEMS = ("params", "opt_state", "rng", "step", "data", "ema_params", "skip")


def _warn(message: str) -> None:
  print(f"warning: {message}", file=sys.stderr, flush=True)


def restore_target(tree: Any) -> Any:
  """ShapeDtypeStructs of `tree` on the first local device: where Orbax restores to.

  Naming the device makes a restore independent of the devices that saved it.
  """
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


class Checkpoints:
  """A CheckpointManager over DIR/checkpoints with the items above."""

  def __init__(self, workdir: str | os.PathLike, *, max_to_keep: int = 3, read_only: bool = False):
    self.directory = Path(workdir).absolute() / "checkpoints"
    if read_only:
      options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    else:
      options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, *, params: Any, opt_state: Any, rng: jax.Array,
           data_state: dict, ema_params: Any = None, skip: Any = None) -> None:
    """Saves asynchronously; `wait()` blocks until it is on disk. None items are not written."""
    items = dict(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        rng=ocp.args.StandardSave({"key_data": jax.random.key_data(rng)}),
        step=ocp.args.JsonSave({"step": int(step)}),
        data=ocp.args.JsonSave(data_state),
    )
    for name, tree in (("ema_params", ema_params), ("skip", skip)):
      if tree is not None:
        items[name] = ocp.args.StandardSave(tree)
    self._manager.save(step, args=ocp.args.Composite(**items), force=True)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def _restore_newest(self, make_args, *, move_aside: bool):
    """Restores the newest readable step; warns and falls back past unreadable ones."""
    steps = self.steps()
    for i, step in enumerate(reversed(steps)):
      try:
        return step, self._manager.restore(step, args=make_args(step))
      except Exception as e:  # Orbax raises many types for a damaged checkpoint
        older = steps[-2 - i] if i + 1 < len(steps) else None
        fallback = f"falling back to step {older}" if older is not None else "no older checkpoint"
        _warn(f"checkpoint at step {step} in {self.directory} is unreadable ({one_line(e)}); {fallback}")
        if move_aside:
          aside = self.directory / f"{step}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
          os.replace(self.directory / str(step), aside)
          _warn(f"moved it to {aside}")
    if steps:
      raise UserError(f"no readable checkpoint in {self.directory} (steps {steps}); "
                      "restore a backup or use a new --workdir")
    return None

  def restore_train(self, *, abstract_params: Any, abstract_opt_state: Any,
                    abstract_ema: Any = None, abstract_skip: Any = None):
    """(step, params, opt_state, rng_key_data, data_state, ema_params, skip) of the newest
    readable step, or None. `ema_params` / `skip` are restored when their abstract trees are given."""
    def make_args(step):
      del step
      items = dict(
          params=ocp.args.StandardRestore(abstract_params),
          opt_state=ocp.args.StandardRestore(abstract_opt_state),
          rng=ocp.args.StandardRestore(),
          step=ocp.args.JsonRestore(),
          data=ocp.args.JsonRestore(),
      )
      for name, tree in (("ema_params", abstract_ema), ("skip", abstract_skip)):
        if tree is not None:
          items[name] = ocp.args.StandardRestore(tree)
      return ocp.args.Composite(**items)
    found = self._restore_newest(make_args, move_aside=True)
    if found is None:
      return None
    self._manager.reload()
    step, r = found
    if r.step["step"] != step:
      raise UserError(f"checkpoint {step} in {self.directory} says it is step {r.step['step']}")
    ema = r.ema_params if abstract_ema is not None else None
    skip = r.skip if abstract_skip is not None else None
    return step, r.params, r.opt_state, np.asarray(r.rng["key_data"]), r.data, ema, skip

  def _has_item(self, step: int, name: str) -> bool:
    return (self.directory / str(step) / name).is_dir()

  def restore_params(self, *, abstract_params: Any, prefer_ema: bool = True):
    """(step, params, "ema" | "raw") of the newest readable checkpoint; nothing else is read.

    With `prefer_ema`, a checkpoint's `ema_params` item is restored instead of `params` when it has one.
    """
    def make_args(step):
      name = "ema_params" if prefer_ema and self._has_item(step, "ema_params") else "params"
      return ocp.args.Composite(**{name: ocp.args.StandardRestore(abstract_params)})
    found = self._restore_newest(make_args, move_aside=False)
    if found is None:
      raise UserError(f"no checkpoint in {self.directory}; train first with "
                      f"`python train.py --workdir {self.directory.parent}`")
    step, r = found
    if "ema_params" in r.keys():
      return step, r.ema_params, "ema"
    return step, r.params, "raw"
