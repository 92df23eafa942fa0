"""Writes images from a trained run, restoring only its parameters:

  python sample.py --workdir DIR --num_samples 64 --output samples.png [--seed S] [--temperature T]
      [--reconstructions recon.png] [--interpolations interp.png] [--label N]
"""

import sys
from pathlib import Path

from absl import flags, logging

from vae_jax import cli, inference, sampling
from vae_jax.errors import UserError, run_cli

_WORKDIR = flags.DEFINE_string("workdir", None, "a run directory written by train.py")
_OUTPUT = flags.DEFINE_string("output", "samples.png", "PNG grid of prior samples")
_NUM = flags.DEFINE_integer("num_samples", 64, "number of prior samples", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "random seed for the prior draws")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "z ~ N(0, T^2 I); < 1 is sharper, less varied",
                                  lower_bound=0.0)
_GROUP_TEMPERATURES = flags.DEFINE_list(
    "group_temperatures", None, "hierarchical models: one temperature per latent group, top first, "
    "comma-separated (replaces --temperature)")
_MODE = flags.DEFINE_enum("mode", "mean", sampling.MODES,
                          "show the likelihood's mean, or draw pixels from it")
_RECON = flags.DEFINE_string("reconstructions", None, "also write test images and reconstructions")
_NUM_RECON = flags.DEFINE_integer("num_reconstructions", 32, "test images to reconstruct", lower_bound=1)
_INTERP = flags.DEFINE_string("interpolations", None, "also write latent interpolations")
_INTERP_ROWS = flags.DEFINE_integer("interpolation_rows", 8, "pairs of test images", lower_bound=1)
_INTERP_STEPS = flags.DEFINE_integer("interpolation_steps", 10, "images per row", lower_bound=2)
_LABEL = flags.DEFINE_integer("label", None, "conditional models: draw every sample of this class; "
                              "without it, column j of the grid is class j", lower_bound=0)


def main() -> None:
  logging.set_verbosity(logging.ERROR)  # Orbax notes that a read-only directory is read-only
  cli.parse_flags(sys.argv)
  if not _WORKDIR.value:
    raise UserError("--workdir is required: the run directory train.py wrote")
  run = inference.load_trained(_WORKDIR.value)
  written = [inference.write_prior_samples(run, Path(_OUTPUT.value), num=_NUM.value, seed=_SEED.value,
                                           temperature=inference.parse_temperatures(
                                               run, _TEMPERATURE.value, _GROUP_TEMPERATURES.value),
                                           mode=_MODE.value,
                                           label=_LABEL.value)]
  if _RECON.value:
    written.append(inference.write_reconstructions(run, Path(_RECON.value), num=_NUM_RECON.value))
  if _INTERP.value:
    written.append(inference.write_interpolations(run, Path(_INTERP.value), num_rows=_INTERP_ROWS.value,
                                                  num_steps=_INTERP_STEPS.value))
  print(f"step {run.step} of {_WORKDIR.value}: wrote {', '.join(map(str, written))}")


if __name__ == "__main__":
  run_cli(main)
