"""Resuming a run: which config changes it may take, and the record of them.

A workdir's `config.json` is the config of the run so far. Rerunning `train.py` on it compares
that with the new config, key by key (dotted names, e.g. `model.latent_dim`):

  FREE keys      bookkeeping, evaluation, and how the same steps are computed (`num_train_steps`,
                 `*_every`, evaluators, devices, `steps_per_call`, ...): accepted.
  OPT_IN keys    values that change what the remaining steps optimise but not the shapes of the
                 checkpoint or the data order (`learning_rate`, the loss and its weights, the data's
                 location, ...): accepted only with `--allow_config_changes`.
  every other    the model, the data, the batch size, the seed, the optimizer's kind, schedule and
  key            clipping, the EMA and update skipping turned on or off: the checkpoint or the
                 data order would not fit, so resuming is refused; a new --workdir starts afresh.

Every accepted change is recorded: `config.json` is rewritten with the new config and
`config_history.jsonl` gets one line per resume (`resumed_at_step`, `time`, and each changed key
with its old and new value). Nothing is written when a resume is refused.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import ml_collections

from vae_jax.errors import UserError

FREE = frozenset({
    "num_train_steps", "log_every", "eval_every", "sample_every", "checkpoint_every",
    "keep_checkpoints", "num_grid_images", "progress_bar", "tensorboard", "log_grad_norm", "evaluators",
    "is_nll_k", "is_nll_chunk", "is_nll_num_examples", "active_units_threshold", "eval_batch_size",
    "parallel", "num_devices", "steps_per_call", "xla_cpu_loop_unrolling", "quality", "max_train_s",
})
OPT_IN = frozenset({
    "learning_rate", "lr_warmup_steps", "weight_decay", "loss", "beta", "kl_warmup_steps",
    "kl_free_bits", "iwae_k", "gan_r1_gamma", "adam_b1", "adam_b2", "skip_quantile", "skip_factor", "max_consecutive_skips",
    "data.dir", "data.tfds_data_dir", "data.augment_flip", "data.augment_crop",
})
CONFIG_FILE = "config.json"
HISTORY_FILE = "config_history.jsonl"


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  """{'model': {'latent_dim': 20}} -> {'model.latent_dim': 20}; tuples become lists (as in JSON)."""
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      out.update(flatten(value, name + "."))
    else:
      out[name] = json.loads(json.dumps(value, default=list))
  return out


def _on(flat: dict[str, Any], key: str) -> bool:
  return bool(flat.get(key) or 0)


def changed_keys(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
  """{key: (old, new)} for every key whose value differs (a missing key counts as None)."""
  return {k: (saved.get(k), new.get(k)) for k in sorted(set(saved) | set(new)) if saved.get(k) != new.get(k)}


def _fixed(key: str, saved: dict[str, Any], new: dict[str, Any], base_keys) -> bool:
  """Whether a change of `key` makes the checkpoint or the data order unfit."""
  if key in FREE or key.split(".")[0] in FREE:
    return False
  if key == "ema_decay":  # a different decay is a new schedule; on <-> off changes the items
    return _on(saved, key) != _on(new, key)
  if key in OPT_IN or key not in base_keys:  # a config's own keys (a user loss's): opt-in, as the loss
    return False
  return True


def _show(value: Any) -> str:
  return "(absent)" if value is None else json.dumps(value)


def check(saved: dict[str, Any], new: dict[str, Any], *, workdir: Path, allow_changes: bool,
          defaults: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
  """The accepted changes {key: (old, new)} of resuming `saved` (flat) with `new` (flat).

  `defaults` is the flat base config: a key the saved config lacks (added to the library since
  the run started) had its default value. Raises UserError, naming every changed key with its
  old and new value, when a change is fixed (or opt-in without `allow_changes`).
  """
  saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
  changes = changed_keys(saved, new)
  fixed = [k for k in changes if _fixed(k, saved, new, defaults)]
  opt_in = [k for k in changes if k not in fixed and k not in FREE and k.split(".")[0] not in FREE]
  if not fixed and (allow_changes or not opt_in):
    return changes
  listed = "; ".join(f"{k}: {_show(changes[k][0])} -> {_show(changes[k][1])}" for k in fixed + opt_in)
  if fixed:
    raise UserError(
        f"{workdir} holds a run with a different config ({listed}); {', '.join(fixed)} cannot change "
        "in a resumed run (the checkpoint or the data order would not fit): use a new --workdir, "
        "or the saved config")
  raise UserError(
      f"{workdir} holds a run with a different config ({listed}); to resume it with "
      f"{'this change' if len(opt_in) == 1 else 'these changes'} pass --allow_config_changes "
      "(recorded in config_history.jsonl), or use a new --workdir")


def load_saved(workdir: Path) -> dict[str, Any] | None:
  """The flat config of the run in `workdir`, or None when it has none."""
  path = workdir / CONFIG_FILE
  if not path.exists():
    return None
  try:
    return flatten(json.loads(path.read_text()))
  except (json.JSONDecodeError, ValueError, AttributeError) as e:
    raise UserError(f"{path} is not a valid config ({e}); restore it or use a new --workdir") from None


def write_atomically(path: Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def record(workdir: Path, config: ml_collections.ConfigDict, *, step: int,
           changes: dict[str, tuple[Any, Any]]) -> None:
  """Rewrites config.json with `config` and appends this resume to config_history.jsonl."""
  write_atomically(workdir / CONFIG_FILE, config.to_json_best_effort(indent=2) + "\n")
  entry = {"resumed_at_step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "changes": {k: [old, new] for k, (old, new) in changes.items()}}
  with (workdir / HISTORY_FILE).open("a") as f:
    f.write(json.dumps(entry) + "\n")
