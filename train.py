"""Trains a VAE: python train.py --config NAME --workdir DIR [--config.KEY=VALUE ...]

NAME is a file of configs/ (e.g. mnist_mlp), or the path of any config file.
--print_config prints the resolved config as JSON and exits without training.

Rerun the same command to resume from DIR's newest checkpoint (resume rules:
vae_jax/resume.py; a finished run is left as it is). With no
arguments it trains the offline default (procedural shapes) in runs/default.
"""

import sys
from pathlib import Path

from absl import flags

from vae_jax import cli, trainer
from vae_jax.errors import run_cli

_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "run directory: checkpoints, metrics, images")
_ALLOW_CHANGES = flags.DEFINE_bool(
    "allow_config_changes", False,
    "resume DIR's run although opt-in keys changed (learning_rate, the loss and its weights, "
    "data.dir, ...); each change is recorded in DIR/config_history.jsonl")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "multi-host: call jax.distributed.initialize() (cluster auto-detected)")


def main() -> None:
  root = Path(__file__).resolve().parent
  config = cli.define_config_flag("default", root=root)
  cli.parse_flags(sys.argv)  # with --print_config, prints the config and exits here
  workdir = cli.check_workdir(_WORKDIR.value)
  config = cli.config_value(config)
  if _DISTRIBUTED.value:
    import jax
    jax.distributed.initialize()
  trainer.train_and_evaluate(config, workdir, allow_config_changes=_ALLOW_CHANGES.value)


if __name__ == "__main__":
  run_cli(main)
