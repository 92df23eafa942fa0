"""Trains a VAE: python train.py --config configs/NAME.py --workdir DIR [--config.KEY=VALUE ...]

Rerun the same command to resume from DIR's newest checkpoint. With no
arguments it trains the offline default (procedural shapes) in runs/default.
"""

import sys
from pathlib import Path

from absl import flags

from vae_jax import cli, trainer
from vae_jax.errors import run_cli

_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "run directory: checkpoints, metrics, images")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "multi-host: call jax.distributed.initialize() (cluster auto-detected)")


def main() -> None:
  config = cli.define_config_flag(str(Path(__file__).parent / "configs" / "default.py"))
  cli.parse_flags(sys.argv)
  if _DISTRIBUTED.value:
    import jax
    jax.distributed.initialize()
  trainer.train_and_evaluate(cli.config_value(config), _WORKDIR.value)


if __name__ == "__main__":
  run_cli(main)
