"""Trains (or shows) a dataset's judge, the classifier behind the sample-quality metrics:

  python -m vae_jax.judge --config NAME [--config.data.dir=...] [--workdir JUDGE_DIR] [--steps N]

NAME is any run config (e.g. mnist_mlp, fashion_mnist_conv); only its `data`
section is read, with labels turned on. The judge is trained on the training
split, its accuracy measured on the whole test split, and both saved in
JUDGE_DIR (default: the dataset's cache folder, which `python -m
vae_jax.evaluate --features judge` uses). A JUDGE_DIR that already holds a
judge is reused: its recorded accuracy is printed and nothing is trained.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import flags, logging

from vae_jax import cli
from vae_jax.errors import run_cli

_WORKDIR = flags.DEFINE_string("workdir", None, "the judge's folder (default: the dataset's cache folder)")
_STEPS = flags.DEFINE_integer("steps", 4000, "training steps", lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 128, "training batch size", lower_bound=1)
_LR = flags.DEFINE_float("learning_rate", 2e-3, "peak learning rate (cosine decay)", lower_bound=0.0)
_SEED = flags.DEFINE_integer("seed", 0, "the judge's seed")


def main() -> None:
  config = cli.define_config_flag("mnist_mlp", root=Path(__file__).resolve().parents[1])
  cli.parse_flags(sys.argv)
  logging.set_verbosity(logging.ERROR)
  data_config = cli.config_value(config).data
  from vae_jax.features import dataset_judge, judge as judge_lib  # after parsing: imports jax
  directory = Path(_WORKDIR.value) if _WORKDIR.value else dataset_judge.judge_dir(data_config)
  if _WORKDIR.value:
    cli.check_workdir(directory)
  reused = judge_lib.is_judge_dir(directory)
  settings = judge_lib.TrainSettings(steps=_STEPS.value, batch_size=_BATCH.value,
                                     learning_rate=_LR.value, seed=_SEED.value)
  judge = dataset_judge.ensure_judge(data_config, directory, settings=settings)
  accuracy = judge.info.get("test_accuracy")
  shown = f"{accuracy:.4f}" if accuracy is not None else "not measured (no test split)"
  print(f"{'reused' if reused else 'trained'} the judge in {directory}: test accuracy {shown}")


if __name__ == "__main__":
  run_cli(main)
