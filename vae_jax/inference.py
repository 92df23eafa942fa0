"""A trained run, loaded for inference: its config, model and parameters only.

`load_trained(workdir)` reads DIR/config.json and restores the `params` item
of the newest readable checkpoint onto the first local device (CPU is fine),
whatever the device count that trained it. The optimizer state is not read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import ml_collections
import numpy as np
from PIL import Image

from vae_jax import checkpointing
from vae_jax import config as config_lib
from vae_jax import data
from vae_jax.data.source import gather_examples
from vae_jax import images
from vae_jax import model as model_lib
from vae_jax import sampling
from vae_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Trained:
  config: ml_collections.ConfigDict
  model: object  # a vae_jax.models.LatentModel
  params: object
  step: int
  params_kind: str = "raw"  # "ema" when the run kept an exponential moving average and it was restored


def params_digest(params) -> str:
  """16 hex digits of SHA-256 over every parameter's path, dtype, shape and bytes, in path order:
  equal for the same parameters wherever the run was copied, different after any change."""
  h = hashlib.sha256()
  leaves = {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
  for name in sorted(leaves):
    array = np.ascontiguousarray(np.asarray(leaves[name]))
    h.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
    h.update(array.tobytes())
  return h.hexdigest()[:16]


def load_config(workdir: Path) -> ml_collections.ConfigDict:
  path = workdir / "config.json"
  if not path.exists():
    raise UserError(f"{path} not found: {workdir} is not a training run directory; "
                    "pass the --workdir you trained with")
  try:
    saved = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise UserError(f"{path} is not valid JSON ({e}); restore it from the run") from None
  config = config_lib.base_config()
  _merge(config, saved)
  return config


def _merge(config: ml_collections.ConfigDict, saved: dict) -> None:
  """Overlays a saved config on the defaults; keeps keys a run's own config added."""
  for key, value in saved.items():
    if isinstance(value, dict):
      if key not in config:
        config[key] = ml_collections.ConfigDict()
      _merge(config[key], value)
    else:
      config[key] = _tuples(value)


def _tuples(value):
  """JSON lists back to (nested) tuples, as configs write them."""
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def load_trained(workdir: str | Path) -> Trained:
  workdir = Path(workdir)
  config = load_config(workdir)
  shape = (config.data.image_size, config.data.image_size, config.data.channels)
  model = model_lib.make_model(config, shape)
  abstract = checkpointing.restore_target(
      jax.eval_shape(lambda: model_lib.init(model, jax.random.key(0), shape)))
  ckpts = checkpointing.Checkpoints(workdir, read_only=True)
  try:
    step, params, kind = ckpts.restore_params(abstract_params=abstract)
  finally:
    ckpts.close()
  return Trained(config=config, model=model, params=params, step=step, params_kind=kind)


def num_classes(run: Trained) -> int:
  """The run's number of classes: > 0 for a conditional model, else 0."""
  return int(getattr(run.model, "num_classes", 0))


def check_class(run: Trained, label: int | None, flag: str = "--label") -> None:
  """Refuses a class label (given as `flag`) that this run's model cannot take; None passes."""
  k = num_classes(run)
  if label is not None and k <= 0:
    raise UserError(f"{flag} needs a conditional model; {run.config.model.name} in this run has no "
                    "classes (train with --config.model.num_classes=N --config.data.labels=True)")
  if label is not None and not 0 <= label < k:
    raise UserError(f"{flag} {label} is not a class of this run; valid: 0..{k - 1}")


def sample_labels(run: Trained, num: int, label: int | None) -> tuple[np.ndarray | None, int | None]:
  """(labels, grid columns) for prior samples: class `label` for all, or, for a conditional model
  with no label, the classes in turn (column j of the grid is class j)."""
  check_class(run, label)
  k = num_classes(run)
  if k <= 0:
    return None, None
  if label is not None:
    return np.full((num,), label, np.int32), None
  return (np.arange(num) % k).astype(np.int32), k


def num_groups(run: Trained) -> int:
  """How many latent groups the run's model has (from shapes only, nothing computed)."""
  keys = jax.random.split(jax.random.key(0), 1)
  y = model_lib.example_labels(run.model, 1)
  out = jax.eval_shape(lambda p: model_lib.generate(p, keys, model=run.model, y=y), run.params)
  return len(out.zs)


def parse_temperatures(run: Trained, temperature: float, per_group: list[str] | None):
  """`temperature`, or a tuple with one temperature per latent group (top first)."""
  if not per_group:
    return temperature
  try:
    values = tuple(float(v) for v in per_group)
  except ValueError:
    raise UserError(f"--group_temperatures {','.join(per_group)}: not numbers") from None
  groups = num_groups(run)
  if len(values) != groups or min(values) < 0:
    raise UserError(f"--group_temperatures needs {groups} non-negative values (one per latent group of "
                    f"this {run.config.model.name} model, top first), got {len(values)}")
  return values


def prior_sample_grid(run: Trained, *, num: int, seed: int, temperature, mode: str = "mean",
                      label: int | None = None) -> Image.Image:
  """A grid of `num` prior samples, computed and checked (e.g. `label`) but not written."""
  y, ncol = sample_labels(run, num, label)
  x = sampling.prior_samples(run.params, jax.random.key(seed), temperature, model=run.model,
                             num=num, mode=mode, y=y)
  return images.grid_image(np.asarray(x), ncol=ncol)


def write_prior_samples(run: Trained, path: Path, *, num: int, seed: int, temperature,
                        mode: str = "mean", label: int | None = None) -> Path:
  """`prior_sample_grid` written to `path` (see images.save_image)."""
  grid = prior_sample_grid(run, num=num, seed=seed, temperature=temperature, mode=mode, label=label)
  return images.save_image(grid, path)


def first_test_images(run: Trained, num: int) -> tuple[np.ndarray, np.ndarray | None]:
  test = data.load_datasets(run.config.data).test
  if len(test) < num:
    raise UserError(f"the test split has {len(test)} images; ask for at most {len(test)}")
  return gather_examples(test, np.arange(num))


def reconstruction_grid(run: Trained, *, num: int) -> Image.Image:
  """Test images (odd columns) beside their reconstructions (even columns); not written."""
  x, y = first_test_images(run, num)
  recon = np.asarray(sampling.reconstructions(run.params, x, model=run.model, y=y))
  return images.grid_image(images.interleave(x / 255.0, recon), ncol=2 * max(1, int(np.sqrt(num))))


def write_reconstructions(run: Trained, path: Path, *, num: int) -> Path:
  """`reconstruction_grid` written to `path` (see images.save_image)."""
  return images.save_image(reconstruction_grid(run, num=num), path)
