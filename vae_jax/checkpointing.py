"""Orbax checkpoints: one Composite item per part of the training state.

Items: `params`, `opt_state` (pytrees), `rng` (the run's key data), `step`
(the step and the run's training seconds so far, JSON) and `data` (the data
iterator's state, JSON), and where the run keeps them
`ema_params` and `skip` (the update-skipping state). Keeping them apart lets
`sample.py` restore `params` (or `ema_params`) alone, on any device, whatever
device count trained them. Parameters are saved unreplicated (host-side
values).

When the newest checkpoint cannot be read (I/O, truncated or corrupt data), we
warn in one line and fall back to the previous readable one; a trainer moves
the unreadable one aside (renamed, never deleted) so the run can save that
step again. A checkpoint that reads but does not fit the run (other shapes, a
params-only checkpoint kept for sampling) is never moved: that is one error
line naming what differs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from vae_jax.errors import UserError, one_line

ITEMS = ("params", "opt_state", "rng", "step", "data", "ema_params", "skip")


class Restored(NamedTuple):
  """What `restore_train` reads back: the training state at `step`."""
  step: int
  params: Any
  opt_state: Any
  key_data: np.ndarray  # the run's PRNG key data
  data_state: dict  # the data iterator's state
  ema_params: Any  # None unless asked for
  skip: Any  # None unless asked for
  train_s: float | None  # the run's training seconds so far (None: not recorded by that version)


def _warn(message: str) -> None:
  print(f"warning: {message}", file=sys.stderr, flush=True)


def restore_target(tree: Any) -> Any:
  """ShapeDtypeStructs of `tree` on the first local device: where Orbax restores to.

  Naming the device makes a restore independent of the devices that saved it.
  """
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def tree_difference(saved: Any, target: Any, limit: int = 3) -> str:
  """The first `limit` leaves where two pytrees differ in path or shape, '' if they agree."""
  def leaves(tree):
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    # Names only: a NamedTuple's '.mu' is restored untargeted as "['mu']".
    return {"/".join(re.findall(r"\w+", jax.tree_util.keystr(path))): tuple(getattr(x, "shape", ()))
            for path, x in flat}
  a, b = leaves(saved), leaves(target)
  diffs = [f"{k} saved {a[k]} vs {b[k]}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
  diffs += [f"{k} only in the checkpoint" for k in sorted(set(a) - set(b))]
  diffs += [f"{k} missing from the checkpoint" for k in sorted(set(b) - set(a))]
  more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
  return "; ".join(diffs[:limit]) + more


class _DropOrbaxErrors(logging.Filter):
  """Orbax logs each failed background write with a traceback, once per thread (hundreds of lines
  for one full disk). Every such failure reaches `Checkpoints` as an exception and is reported as
  one line, so these log records are dropped."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.levelno >= logging.ERROR and "orbax" in record.pathname)


class _DropOrphanedReadErrors(logging.Filter):
  """When a damaged checkpoint fails to read, Orbax abandons its other TensorStore reads; when
  those tasks are garbage-collected asyncio logs "Task exception was never retrieved" with a
  traceback (whether it does depends on GC timing). The failure is already reported as one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = str(record.msg)
    return not (message.startswith(("Task exception was never retrieved",
                                    "Future exception was never retrieved")))


_ORBAX_FILTER = _DropOrbaxErrors()
_ORPHAN_FILTER = _DropOrphanedReadErrors()


class Checkpoints:
  """A CheckpointManager over DIR/checkpoints with the items above."""

  def __init__(self, workdir: str | os.PathLike, *, max_to_keep: int = 3, read_only: bool = False):
    self.directory = Path(workdir).absolute() / "checkpoints"
    for handler in logging.getLogger().handlers:  # absl's handler sits on the root logger
      if _ORBAX_FILTER not in handler.filters:
        handler.addFilter(_ORBAX_FILTER)
    logging.getLogger("absl").addFilter(_ORBAX_FILTER)
    logging.getLogger("asyncio").addFilter(_ORPHAN_FILTER)
    if read_only:
      options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    else:
      options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
    self._failed = ""  # the message of a failed write, once there is one

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, *, params: Any, opt_state: Any, rng: jax.Array,
           data_state: dict, ema_params: Any = None, skip: Any = None, train_s: float = 0.0) -> None:
    """Saves asynchronously; `wait()` blocks until it is on disk. None items are not written.

    `train_s`: the run's seconds of training up to `step`, over every process that trained it
    (restored with the run, so a resumed run's clock goes on).
    """
    items = dict(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        # On the host: Orbax refuses a one-device jax.Array in a multi-process run.
        rng=ocp.args.StandardSave({"key_data": np.asarray(jax.random.key_data(rng))}),
        step=ocp.args.JsonSave({"step": int(step), "train_s": float(train_s)}),
        data=ocp.args.JsonSave(data_state),
    )
    for name, tree in (("ema_params", ema_params), ("skip", skip)):
      if tree is not None:
        items[name] = ocp.args.StandardSave(tree)
    with self._write_errors():
      self._manager.save(step, args=ocp.args.Composite(**items), force=True)

  @contextlib.contextmanager
  def _write_errors(self):
    """A failed write (a full disk, lost permissions), here or in an earlier asynchronous save,
    becomes one UserError; the checkpoints already finished are intact."""
    try:
      yield
    except UserError:
      raise
    except Exception as e:  # Orbax re-raises a background failure as many types
      if self._failed:
        raise UserError(self._failed) from None
      self._failed = (f"could not write a checkpoint in {self.directory} ({one_line(e)}); free space or "
                      "fix permissions, then rerun the command to resume from the newest finished one")
      raise UserError(self._failed) from None

  def wait(self) -> None:
    with self._write_errors():
      self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for the last save and closes; after a failed write, only closes (no second error)."""
    try:
      if not self._failed:
        self.wait()
    finally:
      try:
        self._manager.close()
      except Exception:  # the failure is already reported
        if not self._failed:
          raise

  def _untargeted_args(self, step: int) -> ocp.args.Composite:
    """Restore args for every item the step has, as saved (no target shapes)."""
    items = {}
    for name in ITEMS:
      if self._has_item(step, name):
        json_item = name in ("step", "data")
        items[name] = ocp.args.JsonRestore() if json_item else ocp.args.StandardRestore()
    return ocp.args.Composite(**items)

  def _mismatch(self, step: int, make_args) -> str | None:
    """Why a step that failed to restore is readable but does not fit, or None if it cannot be read."""
    try:
      saved = self._manager.restore(step, args=self._untargeted_args(step))
    except Exception:  # really unreadable
      return None
    target = make_args(step)
    for name in target.keys():
      want = getattr(target[name], "item", None)
      if want is None or name not in saved.keys():
        continue
      diff = tree_difference(saved[name], want)
      if diff:
        return f"its {name} item differs from this run's: {diff}"
    return "its items do not fit this run's state (saved by another version or config)"

  def _restore_newest(self, make_args, *, move_aside: bool, required: tuple[str, ...] = ()):
    """Restores the newest readable step; warns and falls back past unreadable ones.

    Only a checkpoint that cannot be read is passed over (and, with `move_aside`, renamed).
    One that lacks a `required` item, or reads but does not fit the run, is a UserError, and
    nothing is renamed.
    """
    steps = self.steps()
    for i, step in enumerate(reversed(steps)):
      missing = [name for name in required if not self._has_item(step, name)]
      if missing:
        kept = [name for name in ITEMS if self._has_item(step, name)]
        raise UserError(
            f"checkpoint {step} in {self.directory} holds only {', '.join(kept) or 'nothing'} (no "
            f"{', '.join(missing)}): sample.py and evaluate can use it, but training cannot resume "
            "from it; use a new --workdir")
      try:
        return step, self._manager.restore(step, args=make_args(step))
      except Exception as e:  # Orbax raises many types for a damaged checkpoint
        why = self._mismatch(step, make_args)
        if why is not None:
          raise UserError(f"checkpoint {step} in {self.directory} is readable but does not fit this "
                          f"run: {why}; use the config it was trained with, or a new --workdir") from None
        older = steps[-2 - i] if i + 1 < len(steps) else None
        fallback = f"falling back to step {older}" if older is not None else "no older checkpoint"
        moved = ""
        if move_aside and jax.process_index() == 0:  # one host renames; the others fall back too
          aside = self.directory / f"{step}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
          os.replace(self.directory / str(step), aside)
          moved = f"; moved it to {aside.name}"
        _warn(f"checkpoint at step {step} in {self.directory} is unreadable ({one_line(e)}){moved}; {fallback}")
    if steps:
      raise UserError(f"no readable checkpoint in {self.directory} (steps {steps}); "
                      "restore a backup or use a new --workdir")
    return None

  def restore_train(self, *, abstract_params: Any, abstract_opt_state: Any,
                    abstract_ema: Any = None, abstract_skip: Any = None) -> "Restored | None":
    """The newest readable step's training state, or None. `ema_params` / `skip` are restored
    when their abstract trees are given."""
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
    found = self._restore_newest(make_args, move_aside=True,
                                 required=("params", "opt_state", "rng", "step", "data"))
    if found is None:
      return None
    self._manager.reload()
    step, r = found
    if r.step["step"] != step:
      raise UserError(f"checkpoint {step} in {self.directory} says it is step {r.step['step']}")
    ema = r.ema_params if abstract_ema is not None else None
    skip = r.skip if abstract_skip is not None else None
    train_s = r.step.get("train_s")  # absent from checkpoints written before it was recorded
    return Restored(step=step, params=r.params, opt_state=r.opt_state, key_data=np.asarray(r.rng["key_data"]),
                    data_state=r.data, ema_params=ema, skip=skip,
                    train_s=None if train_s is None else float(train_s))

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
