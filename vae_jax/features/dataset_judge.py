"""The judge of a dataset: found in its cache folder, or trained there on first use.

A dataset's judge lives in `judge_dir(data_config)`:
$VAE_JAX_CACHE/judges/<name>-<H>x<W>x<C>-<hash> (VAE_JAX_CACHE defaults to
~/.cache/vae_jax), the hash covering what decides the training data (name,
data.dir, the TFDS data_dir, image size, channels, the training-example
limit). `ensure_judge` loads it, or trains one on the labelled training split,
measures its accuracy on the test split and saves both, so
`python -m vae_jax.evaluate --features judge` works on a fresh run directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import ml_collections
import numpy as np

from vae_jax import data
from vae_jax.data.source import gather_examples
from vae_jax.errors import UserError
from vae_jax.features import judge as judge_lib


def cache_root() -> Path:
  return Path(os.environ.get("VAE_JAX_CACHE") or Path.home() / ".cache" / "vae_jax")


def _identity(data_config: ml_collections.ConfigDict) -> dict:
  """What decides a judge's training data (not its evaluation limits or transforms)."""
  directory = str(Path(data_config.dir).resolve()) if data_config.dir else ""
  return {"name": data_config.name, "dir": directory, "tfds_data_dir": data_config.get("tfds_data_dir", ""),
          "image_size": int(data_config.image_size), "channels": int(data_config.channels),
          "num_train_examples": int(data_config.num_train_examples)}


def judge_dir(data_config: ml_collections.ConfigDict) -> Path:
  """The cache folder of this dataset's judge."""
  ident = _identity(data_config)
  digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
  size = f"{ident['image_size']}x{ident['image_size']}x{ident['channels']}"
  return cache_root() / "judges" / f"{ident['name']}-{size}-{digest}"


def labelled_data_config(data_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The dataset with labels on and every test example (the judge's test accuracy is on all of them)."""
  config = ml_collections.ConfigDict(data_config.to_dict())
  config.labels = True
  config.num_test_examples = 0
  return config


def _whole_split(source) -> tuple[np.ndarray, np.ndarray]:
  images, labels = gather_examples(source, np.arange(len(source)))
  return images, labels


def train_for_dataset(data_config: ml_collections.ConfigDict, settings: judge_lib.TrainSettings, *,
                      log: Callable[[str], None] = print) -> judge_lib.Judge:
  """Trains a judge on the dataset's labelled training split; its test accuracy goes into its info."""
  datasets = data.load_datasets(labelled_data_config(data_config))
  if datasets.num_classes < 2:
    raise UserError(f"data.name={data_config.name} has no class labels; a judge needs a labelled "
                    "dataset (mnist, fashion_mnist, cifar10, shapes, or a folder with a subfolder per class)")
  train_x, train_y = _whole_split(datasets.train)
  log(f"training the judge of {data_config.name} on {len(train_x)} labelled images "
      f"({settings.steps} steps of {settings.batch_size})")
  judge = _train_and_test(train_x, train_y, datasets, settings, log=log)
  judge.info["dataset"] = _identity(data_config)
  judge.info["class_names"] = list(datasets.class_names)
  return judge


def _train_and_test(train_x, train_y, datasets, settings, *, log) -> judge_lib.Judge:
  judge = judge_lib.train_judge(train_x, train_y, datasets.num_classes, settings, log=log)
  if len(datasets.test):
    test_x, test_y = _whole_split(datasets.test)
    judge.info["test_accuracy"] = judge_lib.accuracy(judge, test_x, test_y)
    judge.info["test_examples"] = len(test_x)
    log(f"judge test accuracy {judge.info['test_accuracy']:.4f} on {len(test_x)} images")
  return judge


def ensure_judge(data_config: ml_collections.ConfigDict, directory: str | os.PathLike | None = None, *,
                 settings: judge_lib.TrainSettings | None = None,
                 log: Callable[[str], None] = print) -> judge_lib.Judge:
  """The judge in `directory` (default: `judge_dir(data_config)`), trained and saved there if absent."""
  directory = Path(directory) if directory is not None else judge_dir(data_config)
  if judge_lib.is_judge_dir(directory):
    judge = judge_lib.load_judge(directory)
    expected = [int(data_config.image_size), int(data_config.image_size), int(data_config.channels)]
    if list(judge.info["image_shape"]) != expected:
      raise UserError(f"the judge in {directory} was trained on images {judge.info['image_shape']}, "
                      f"this data has {expected}; name another --judge_dir")
    return judge
  import jax
  if jax.process_count() > 1:  # every process would train its own into one folder
    raise UserError(f"no judge in {directory}; in a multi-host run train it first, in one process: "
                    f"python -m vae_jax.judge --config NAME --workdir {directory}")
  judge = train_for_dataset(data_config, settings or judge_lib.TrainSettings(), log=log)
  judge_lib.save_judge(judge, directory)
  log(f"saved the judge in {directory}")
  return judge
