"""Trains a VAE: python train.py --config NAME --workdir DIR [--config.KEY=VALUE ...]

NAME is a file of configs/ (e.g. mnist_mlp), or the path of any config file.
--print_config prints the resolved config as JSON and exits without training.

Rerun the same command to resume from DIR's newest checkpoint (resume rules:
vae_jax/resume.py; a finished run is left as it is). With no
arguments it trains the offline default (procedural shapes) in runs/default.

Multi-host: run the same command in every process, adding
--coordinator_address=HOST:PORT --num_processes=N --process_id=I (I = 0..N-1;
process 0 serves the coordinator at HOST:PORT), or --distributed alone where
jax detects the cluster (SLURM, Open MPI, Cloud TPU, ...). The workdir must be
one shared directory; process 0 writes the metrics, images and config.json,
all processes write the checkpoints.
"""

import sys
from pathlib import Path

from absl import flags

from vae_jax import cli, parallel, trainer, xla_cpu
from vae_jax.errors import run_cli

_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "run directory: checkpoints, metrics, images")
_ALLOW_CHANGES = flags.DEFINE_bool(
    "allow_config_changes", False,
    "resume DIR's run although opt-in keys changed (learning_rate, the loss and its weights, "
    "data.dir, ...); each change is recorded in DIR/config_history.jsonl")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "multi-host: call jax.distributed.initialize() (cluster auto-detected)")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "multi-host: HOST:PORT of process 0's coordinator (with "
    "--num_processes and --process_id)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "multi-host: the number of processes",
                                      lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "multi-host: this process's index, 0 to "
                                   "num_processes - 1", lower_bound=0)


def main() -> None:
  root = Path(__file__).resolve().parent
  config = cli.define_config_flag("default", root=root)
  cli.parse_flags(sys.argv)  # with --print_config, prints the config and exits here
  workdir = cli.check_workdir(_WORKDIR.value)
  config = cli.config_value(config)
  xla_cpu.apply(config)  # before JAX starts its backend
  parallel.initialize_distributed(_DISTRIBUTED.value, coordinator_address=_COORDINATOR.value,
                                  num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  trainer.train_and_evaluate(config, workdir, allow_config_changes=_ALLOW_CHANGES.value)


if __name__ == "__main__":
  run_cli(main)
