"""Writes images from a trained run, restoring only its parameters:

  python sample.py --workdir DIR --num_samples 64 --output samples.png [--seed S] [--temperature T]
      [--reconstructions recon.png] [--interpolations interp.png] [--label N]

Every argument and output path is checked before anything is written: a bad one is
one line `error: ...` and exit status 2, with no file written. Outputs are PNG
(.png) or JPEG (.jpg, .jpeg) as the extension says, in directories that exist.
Each is written to a temporary file beside it and renamed into place once all
images are made, so no partial or temporary file is left behind.
"""

import sys
from pathlib import Path

from absl import flags, logging
from PIL import Image

from vae_jax import cli, images, inference, sampling
from vae_jax.errors import UserError, run_cli

_WORKDIR = flags.DEFINE_string("workdir", None, "a run directory written by train.py")
_OUTPUT = flags.DEFINE_string("output", "samples.png", "grid of prior samples (.png, .jpg or .jpeg)")
_NUM = flags.DEFINE_integer("num_samples", 64, "number of prior samples", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "random seed for the prior draws")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "z ~ N(0, T^2 I); < 1 is sharper, less varied",
                                  lower_bound=0.0)
_GROUP_TEMPERATURES = flags.DEFINE_list(
    "group_temperatures", None, "hierarchical models: one temperature per latent group, top first, "
    "comma-separated (replaces --temperature)")
_MODE = flags.DEFINE_enum("mode", "mean", sampling.MODES,
                          "show the likelihood's mean, or draw pixels from it")
_RECON = flags.DEFINE_string("reconstructions", None,
                             "also write test images and reconstructions (.png, .jpg or .jpeg)")
_NUM_RECON = flags.DEFINE_integer("num_reconstructions", 32, "test images to reconstruct", lower_bound=1)
_INTERP = flags.DEFINE_string("interpolations", None,
                              "also write latent interpolations (.png, .jpg or .jpeg)")
_INTERP_ROWS = flags.DEFINE_integer("interpolation_rows", 8, "pairs of test images", lower_bound=1)
_INTERP_STEPS = flags.DEFINE_integer("interpolation_steps", 10, "images per row", lower_bound=2)
_LABEL = flags.DEFINE_integer("label", None, "conditional models: draw every sample of this class; "
                              "without it, column j of the grid is class j", lower_bound=0)


_OUTPUT_FLAGS = {"output": _OUTPUT, "reconstructions": _RECON, "interpolations": _INTERP}


def output_paths() -> dict[str, Path]:
  """The output flags given, by name, each path checked (images.check_output) and distinct."""
  paths = {name: images.check_output(flag.value, f"--{name}")
           for name, flag in _OUTPUT_FLAGS.items() if flag.value is not None}
  seen: dict[Path, str] = {}
  for name, path in paths.items():
    if path.resolve() in seen:
      raise UserError(f"--{seen[path.resolve()]} and --{name} are the same file {path}; "
                      "give each output its own name")
    seen[path.resolve()] = name
  return paths


def make_grids(run: inference.Trained, paths: dict[str, Path]) -> list[tuple[Path, Image.Image]]:
  """(path, image) for each output, all computed (and every argument checked) before any is written."""
  temperature = inference.parse_temperatures(run, _TEMPERATURE.value, _GROUP_TEMPERATURES.value)
  grids = [(paths["output"], inference.prior_sample_grid(
      run, num=_NUM.value, seed=_SEED.value, temperature=temperature, mode=_MODE.value,
      label=_LABEL.value))]
  if "reconstructions" in paths:
    grids.append((paths["reconstructions"], inference.reconstruction_grid(run, num=_NUM_RECON.value)))
  if "interpolations" in paths:
    grids.append((paths["interpolations"], inference.interpolation_grid(
        run, num_rows=_INTERP_ROWS.value, num_steps=_INTERP_STEPS.value)))
  return grids


def main() -> None:
  logging.set_verbosity(logging.ERROR)  # Orbax notes that a read-only directory is read-only
  cli.parse_flags(sys.argv)
  if not _WORKDIR.value:
    raise UserError("--workdir is required: the run directory train.py wrote")
  paths = output_paths()
  run = inference.load_trained(_WORKDIR.value)
  written = images.write_images(make_grids(run, paths))
  print(f"step {run.step} of {_WORKDIR.value}: wrote {', '.join(map(str, written))}")


if __name__ == "__main__":
  run_cli(main)
