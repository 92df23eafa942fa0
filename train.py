"""Trains a VAE: python train.py --config configs/NAME.py --workdir DIR [--config.KEY=VALUE ...]

Rerun the same command to resume from DIR's newest checkpoint. With no
arguments it trains the offline default (procedural shapes) in runs/default.
"""

import sys
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from vae_jax import cli, trainer
from vae_jax.errors import run_cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "default.py"), "config file (a get_config())")
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "run directory: checkpoints, metrics, images")


def main() -> None:
  cli.parse_flags(sys.argv)
  trainer.train_and_evaluate(cli.load_config_flag(_CONFIG), _WORKDIR.value)


if __name__ == "__main__":
  run_cli(main)
