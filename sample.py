"""Writes images from a trained run, restoring only its parameters:

  python sample.py --workdir DIR --num_samples 64 --output samples.png [--seed S] [--temperature T]
      [--reconstructions recon.png] [--interpolations interp.png [--interpolation_method slerp]]
      [--traversals trav.png] [--label N]
      [--candidates 4096 --keep_by judge|elbo|realism]
  python sample.py --workdir DIR --inpaint IMAGE --mask MASK --output OUT.png [--num_imputations M]
  python sample.py --workdir DIR --inpaintings grid.png [--missing mcar|block] [--num_imputations M]
  python sample.py --workdir DIR --transfer [--content A.png --style B.png] --output OUT.png

With --candidates M, M prior samples are drawn and the best --num_samples of
them kept, best first (vae_jax/keep_best.py): by the judge's confidence, by
the model's own ELBO of the sample, or by the realism score against the test
split's features (--features judge|inception).

With --inpaint, --output is IMAGE with the pixels MASK marks missing (white)
filled by importance-weighted imputation (vae_jax/imputation.py), every
observed pixel kept exactly, at IMAGE's size; with --num_imputations M it is
a row: the input (missing pixels gray), that imputation, and M imputations
drawn by sampling importance resampling (vae_jax/inpainting.py).

With --transfer (a conditional model), --output is A's per-image code drawn
in B's group (its class, or a folder's subdirectory such as an art style);
a group not given with --content_label/--style_label is the model's own
guess (vae_jax/transfer.py). Without --content/--style it is a grid over
test images: column 0 the image, column 1 + g its transfer into group g.

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

from vae_jax import cli, images, inference, inpainting, keep_best, latents, sampling, transfer, xla_cpu
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
_INTERP_METHOD = flags.DEFINE_enum("interpolation_method", "line", latents.METHODS,
                                   "interpolate posterior means along a straight line or a great circle (slerp)")
_TRAVERSALS = flags.DEFINE_string("traversals", None, "also write latent traversals of a test image: row r sweeps "
                                  "the unit with the r-th largest KL (.png, .jpg or .jpeg)")
_TRAV_UNITS = flags.DEFINE_integer("traversal_units", 8, "rows: the highest-KL units to sweep", lower_bound=1)
_TRAV_VALUES = flags.DEFINE_integer("traversal_values", 9, "columns: values per unit", lower_bound=2)
_TRAV_SPAN = flags.DEFINE_float("traversal_span", 3.0, "values run over prior mean +- span prior std devs",
                                lower_bound=0.0)
_TRAV_IMAGE = flags.DEFINE_integer("traversal_image", 0, "the test image whose code is swept", lower_bound=0)
_LABEL = flags.DEFINE_integer("label", None, "conditional models: draw every sample of this class; "
                              "without it, column j of the grid is class j", lower_bound=0)
_CANDIDATES = flags.DEFINE_integer("candidates", 0, "draw this many prior samples and keep the best "
                                  "--num_samples of them (0: no selection)", lower_bound=0)
_KEEP_BY = flags.DEFINE_enum("keep_by", "judge", keep_best.KEEP_BY, "with --candidates: the score to keep by")
_FEATURES = flags.DEFINE_enum("features", None, ["judge", "inception"], "--keep_by judge or realism: the "
                              "feature network (default: the run's quality.features)")
_JUDGE_DIR = flags.DEFINE_string("judge_dir", None, "the judge's folder (default: the dataset's cache "
                                 "folder, trained there on first use)")

_INPAINT = flags.DEFINE_string("inpaint", None, "an image to fill in: --output gets it with the pixels "
                               "--mask marks missing filled (observed pixels kept exactly)")
_MASK = flags.DEFINE_string("mask", None, "with --inpaint: a grayscale image of the same size, white = missing")
_NUM_IMPUTATIONS = flags.DEFINE_integer("num_imputations", 0, "with --inpaint: also draw this many imputations "
                                        "(sampling importance resampling) into a row", lower_bound=0)
_IMPORTANCE = flags.DEFINE_integer("importance_samples", 1000, "with --inpaint: posterior draws that weight "
                                   "the imputation", lower_bound=1)

_TRANSFER = flags.DEFINE_boolean("transfer", False, "--output gets --content's per-image code in --style's "
                                 "group (a conditional model); without them, a grid over test images")
_CONTENT = flags.DEFINE_string("content", None, "with --transfer: the image whose per-image code is kept")
_STYLE = flags.DEFINE_string("style", None, "with --transfer: the image whose group (class, style) is used "
                             "(or give the group as --style_label)")
_CONTENT_LABEL = flags.DEFINE_integer("content_label", None, "with --transfer: --content's group (default: "
                                      "the model's guess)", lower_bound=0)
_STYLE_LABEL = flags.DEFINE_integer("style_label", None, "with --transfer: --style's group (default: the "
                                    "model's guess)", lower_bound=0)
_TRANSFER_ROWS = flags.DEFINE_integer("transfer_rows", 10, "with --transfer and no files: test images in the "
                                      "grid", lower_bound=1)

_INPAINTINGS = flags.DEFINE_string("inpaintings", None, "also write test images filled in under a missing-data "
                                   "pattern: rows original, input, single imputation, --num_imputations more")
_MISSING = flags.DEFINE_enum("missing", None, ["mcar", "block"], "--inpaintings' pattern (default: the run's "
                             "data.missing), with --missing_rate / --missing_block")
_MISSING_RATE = flags.DEFINE_float("missing_rate", 0.5, "--missing mcar: the share of pixels missing")
_MISSING_BLOCK = flags.DEFINE_integer("missing_block", 14, "--missing block: the square's side")
_NUM_INPAINTINGS = flags.DEFINE_integer("num_inpaintings", 10, "--inpaintings: test images", lower_bound=1)

_OUTPUT_FLAGS = {"output": _OUTPUT, "reconstructions": _RECON, "interpolations": _INTERP,
                 "traversals": _TRAVERSALS, "inpaintings": _INPAINTINGS}


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
  if _INPAINT.value:
    grids = [(paths["output"], inpainted(run))]
  elif _TRANSFER.value:
    grids = [(paths["output"], transferred(run))]
  elif _CANDIDATES.value:
    grids = [(paths["output"], best_of_candidates(run, temperature))]
  else:
    grids = [(paths["output"], inference.prior_sample_grid(
        run, num=_NUM.value, seed=_SEED.value, temperature=temperature, mode=_MODE.value,
        label=_LABEL.value))]
  if "reconstructions" in paths:
    grids.append((paths["reconstructions"], inference.reconstruction_grid(run, num=_NUM_RECON.value)))
  if "interpolations" in paths:
    grids.append((paths["interpolations"], latents.interpolation_grid(
        run, num_rows=_INTERP_ROWS.value, num_steps=_INTERP_STEPS.value, method=_INTERP_METHOD.value)))
  if "inpaintings" in paths:
    grids.append((paths["inpaintings"], inpainting.test_grid(
        run, missing_pattern(run), num=_NUM_INPAINTINGS.value, num_samples=_IMPORTANCE.value,
        num_imputations=_NUM_IMPUTATIONS.value, seed=_SEED.value, mode=_MODE.value)))
  if "traversals" in paths:
    grids.append((paths["traversals"], latents.traversal_grid(
        run, num_units=_TRAV_UNITS.value, num_values=_TRAV_VALUES.value, span=_TRAV_SPAN.value,
        image_index=_TRAV_IMAGE.value)))
  return grids


def check_candidates(run: inference.Trained) -> None:
  """Refuses a --candidates request that cannot work, before anything is computed."""
  if _CANDIDATES.value < _NUM.value:
    raise UserError(f"--candidates {_CANDIDATES.value} must be at least --num_samples {_NUM.value}")
  if _LABEL.value is not None:
    raise UserError("--candidates draws the classes in turn; it does not take --label")
  if _KEEP_BY.value == "elbo" and not run.model.has_encoder:
    raise UserError(f"--keep_by elbo needs a VAE; {run.config.model.name} has no encoder "
                    "(use --keep_by judge or realism)")
  if _KEEP_BY.value == "judge" and (_FEATURES.value or "judge") != "judge":
    raise UserError("--keep_by judge scores with the judge; leave out --features inception")


def check_inpaint(run: inference.Trained) -> None:
  """Refuses an --inpaint request that cannot work, before anything is computed."""
  if not _MASK.value:
    raise UserError("--inpaint needs --mask: a grayscale image of the same size, white = missing")
  if _CANDIDATES.value:
    raise UserError("--inpaint fills one image; it does not take --candidates")
  inpainting.check_model(run)
  inpainting.check_label(run, _LABEL.value)


def inpainted(run: inference.Trained) -> Image.Image:
  """--inpaint's output image (see the module doc)."""
  image, observed = inpainting.read_pair(_INPAINT.value, _MASK.value, run.config.data.channels)
  filled = inpainting.inpaint(run, image, observed, num_samples=_IMPORTANCE.value,
                              num_imputations=_NUM_IMPUTATIONS.value, seed=_SEED.value, mode=_MODE.value,
                              label=_LABEL.value)
  return inpainting.output_image(filled, image, observed)


def missing_pattern(run: inference.Trained):
  """--inpaintings' pattern: --missing (with its rate or block), else the run's own data.missing."""
  from vae_jax.data import missing
  inpainting.check_model(run)
  config = run.config.data.copy_and_resolve_references()
  if _MISSING.value:
    config.missing, config.missing_rate, config.missing_block = _MISSING.value, _MISSING_RATE.value, _MISSING_BLOCK.value
  if not config.missing:
    raise UserError("--inpaintings needs a missing-data pattern: this run was trained on complete data, so pass "
                    "--missing mcar (with --missing_rate) or --missing block (with --missing_block)")
  missing.validate(config)
  return missing.MissingPattern.from_config(config)


def check_transfer(run: inference.Trained) -> None:
  """Refuses a --transfer request that cannot work, before anything is computed."""
  if _STYLE.value and not _CONTENT.value:
    raise UserError("--transfer --style B.png needs --content A.png (or neither: a grid over test images)")
  if _CONTENT.value and not (_STYLE.value or _STYLE_LABEL.value is not None):
    raise UserError("--transfer --content A.png needs --style B.png or --style_label N: the group to draw it in")
  if _INPAINT.value or _CANDIDATES.value:
    raise UserError("--transfer writes its own --output; it does not take --inpaint or --candidates")
  transfer.check_model(run)


def transferred(run: inference.Trained) -> Image.Image:
  """--transfer's output image (see the module doc)."""
  if not _CONTENT.value:
    x, y = inference.first_test_images(run, _TRANSFER_ROWS.value)
    return transfer.analogy_grid(run, x, y)
  image, y_a, y_b = transfer.transfer_files(run, _CONTENT.value, _STYLE.value, content_label=_CONTENT_LABEL.value,
                                            style_label=_STYLE_LABEL.value)
  guess = " (the model's guess)"
  print(f"content {_CONTENT.value}: group {y_a}{'' if _CONTENT_LABEL.value is not None else guess}; "
        f"style {_STYLE.value or '--style_label'}: group {y_b}{'' if _STYLE_LABEL.value is not None else guess}")
  return image


def best_of_candidates(run: inference.Trained, temperature) -> Image.Image:
  """The grid of the best --num_samples of --candidates prior samples, best first."""
  from vae_jax import data
  from vae_jax.features.extractors import FEATURES
  candidates, labels = keep_best.draw_candidates(run, _CANDIDATES.value, seed=_SEED.value,
                                                 temperature=temperature, mode=_MODE.value)
  network = test = None
  if _KEEP_BY.value != "elbo":
    features = "judge" if _KEEP_BY.value == "judge" else (_FEATURES.value or run.config.quality.features)
    network = FEATURES.get(features)(run.config.data, _JUDGE_DIR.value or run.config.quality.judge_dir or None,
                                     judge_steps=int(run.config.quality.judge_steps))
    test = data.load_datasets(run.config.data).test if _KEEP_BY.value == "realism" else None
  scores = keep_best.scores(_KEEP_BY.value, run, candidates, labels, network=network, test_source=test,
                            seed=_SEED.value)
  kept, _ = keep_best.keep_top(candidates, scores, _NUM.value)
  return images.grid_image(kept / 255.0)


def main() -> None:
  logging.set_verbosity(logging.ERROR)  # Orbax notes that a read-only directory is read-only
  cli.parse_flags(sys.argv)
  if not _WORKDIR.value:
    raise UserError("--workdir is required: the run directory train.py wrote")
  paths = output_paths()
  if _MASK.value and not _INPAINT.value:
    raise UserError("--mask goes with --inpaint IMAGE")
  if (_CONTENT.value or _STYLE.value) and not _TRANSFER.value:
    raise UserError("--content and --style go with --transfer")
  xla_cpu.apply(inference.load_config(Path(_WORKDIR.value)))  # the run's choice, before JAX starts
  run = inference.load_trained(_WORKDIR.value)
  if _TRANSFER.value:
    check_transfer(run)
  elif _INPAINT.value:
    check_inpaint(run)
  elif _CANDIDATES.value:
    check_candidates(run)
  written = images.write_images(make_grids(run, paths))
  print(f"step {run.step} of {_WORKDIR.value}: wrote {', '.join(map(str, written))}")


if __name__ == "__main__":
  run_cli(main)
