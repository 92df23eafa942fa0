"""Evaluates a trained run on its test split with any registered evaluators:

  python -m vae_jax.evaluate --workdir DIR --metrics is_nll,elbo --k 5000 [--num_examples N]
      --output FILE.json
  python -m vae_jax.evaluate --workdir DIR --metrics is_nll,elbo --k 5000 --examples 0:5000 --output A.json
  python -m vae_jax.evaluate --merge A.json,B.json --output ALL.json     # parts of one evaluation
  python -m vae_jax.evaluate --workdir DIR --metrics fid,kid,precision_recall,class_coverage
      --features judge|inception --num_samples N --output FILE.json

or compares two folders of images, as the reference FID tools do:

  python -m vae_jax.evaluate --fid_dirs DIR_A DIR_B --features inception [--output FILE.json]

Restores the newest readable checkpoint's parameters (the EMA parameters when
the run kept them), uses every local device, and writes one JSON object with
`step`, `num_examples`, `examples` ([start, end)), `k`, `params` ("raw" or "ema"),
`params_digest` (SHA-256 of those parameters; --merge compares it), `metrics`, every
evaluator's figures (e.g. `is_nll`, `is_nll_stderr`, `neg_elbo`,
`bits_per_dim`; `fid`, `kid`, `kid_std`, `precision`, `recall`,
`class_entropy`, `class_coverage`, `cond_accuracy`, `quality_num_samples`),
`features` with the feature network's info (the judge's test accuracy),
`wall_s` and `device`. `--features judge` trains the dataset's judge on first
use (vae_jax/features/dataset_judge.py) and reuses it after. The test binarisation and draws are
the run's own (its seed's evaluation key, each example's index), so figures
match the run's metrics.jsonl and each other.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from absl import flags, logging

from vae_jax import cli
from vae_jax.errors import UserError, run_cli

_WORKDIR = flags.DEFINE_string("workdir", None, "a run directory written by train.py")
_METRICS = flags.DEFINE_list("metrics", ["is_nll", "elbo"],
                             "evaluators to run, comma-separated: loss, elbo, is_nll, active_units "
                             "(or package.module:Class)")
_K = flags.DEFINE_integer("k", None, "is_nll: importance samples per example (default: the run's is_nll_k)",
                          lower_bound=1)
_CHUNK = flags.DEFINE_integer("chunk", None, "is_nll: samples per jitted call (memory bound)", lower_bound=1)
_NUM = flags.DEFINE_integer("num_examples", 0, "the first N test examples; 0 = all", lower_bound=0)
_EXAMPLES = flags.DEFINE_string("examples", None, "START:END: test examples START to END-1 only, each with "
                                "the draws of a whole-split evaluation, so parts can be --merge'd")
_MERGE = flags.DEFINE_list("merge", None, "A.json,B.json,...: merge records of adjacent --examples ranges "
                           "of one evaluation (is_nll, elbo, loss) into one, written to --output")
_BATCH = flags.DEFINE_integer("batch_size", None, "global evaluation batch (default: the run's)", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "write the results here as JSON")
_FEATURES = flags.DEFINE_enum("features", None, ["judge", "inception"],
                              "fid/kid/precision_recall/class_coverage: the feature network "
                              "(default: the run's quality.features)")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", None, "sample-quality metrics: generated images "
                                    "(default: the run's quality.num_samples)", lower_bound=2)
_JUDGE_DIR = flags.DEFINE_string("judge_dir", None, "--features judge: the judge's folder (default: the "
                                 "dataset's cache folder, trained there on first use)")
_JUDGE_STEPS = flags.DEFINE_integer("judge_steps", None, "--features judge: training steps of a judge trained "
                                   "on first use (default: the run's quality.judge_steps)", lower_bound=1)
_FID_DIRS = flags.DEFINE_list("fid_dirs", None, "DIR_A DIR_B (or DIR_A,DIR_B): compare two image folders "
                              "instead of a run (fid, kid, precision, recall)")


def _check_output(path: str | None) -> Path | None:
  """Refuses an output that cannot be written, before any work."""
  if path is None:
    return None
  out = Path(path)
  if out.is_dir():
    raise UserError(f"--output {out} is a directory; name a file, e.g. {out / 'eval.json'}")
  if not out.parent.is_dir():
    raise UserError(f"--output {out}: folder {out.parent} does not exist; create it first")
  return out


def write_json(path: Path, record: dict) -> None:
  """Writes `record` to `path` whole or not at all (a temporary file, then a rename)."""
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(record, indent=2) + "\n")
  os.replace(tmp, path)


def parse_examples(text: str) -> tuple[int, int]:
  """'START:END' -> (START, END), 0 <= START < END; UserError otherwise."""
  try:
    start, stop = (int(part) for part in text.split(":"))
  except ValueError:
    raise UserError(f"--examples={text}: expected START:END, e.g. --examples=0:5000") from None
  if not 0 <= start < stop:
    raise UserError(f"--examples={text}: needs 0 <= START < END")
  return start, stop


def _window(test, examples: tuple[int, int] | None):
  from vae_jax.data.source import Window
  if examples is None:
    return test
  if examples[1] > len(test):
    raise UserError(f"--examples={examples[0]}:{examples[1]}: the test split has {len(test)} examples")
  return Window(test, *examples)


def evaluate_run(workdir: str | Path, metrics: list[str], *, k: int | None = None, chunk: int | None = None,
                 num_examples: int = 0, batch_size: int | None = None, quality: dict | None = None,
                 examples: tuple[int, int] | None = None) -> dict:
  """Runs `metrics` on the run in `workdir` (on `examples` [start, stop) of its test split when
  given); returns the JSON record."""
  from vae_jax import data, evaluators, hardware, inference, losses, parallel, trainer
  from vae_jax.data.source import first_index
  if examples is not None and num_examples:
    raise UserError("--examples and --num_examples both choose examples; pass one")
  quality_names = set(metrics) & set(evaluators.SAMPLE_QUALITY_NAMES)
  if examples is not None and quality_names:
    raise UserError(f"--examples: {', '.join(sorted(quality_names))} compare samples with the whole test "
                    "split; evaluate them without --examples")

  run = inference.load_trained(workdir)
  config = run.config
  if k is not None:
    config.is_nll_k = k
  if chunk is not None:
    config.is_nll_chunk = chunk
  if batch_size is not None:
    config.eval_batch_size = batch_size
  config.data.num_test_examples = num_examples
  config.quality.update({key: value for key, value in (quality or {}).items() if value is not None})
  config.is_nll_num_examples = 0  # --num_examples governs every evaluator here
  backend = parallel.make_backend(config.parallel, config.num_devices)
  trainer.check_divisible(config, backend)
  test = _window(data.load_datasets(config.data).test, examples)
  setup = evaluators.EvalSetup(model=run.model, config=config, loss_fn=losses.get_loss_fn(config),
                               backend=backend, eval_key=trainer.Keys.from_seed(config.seed).eval,
                               batch_size=config.eval_batch_size)
  chosen = evaluators.make_evaluators(metrics, setup)
  print(f"evaluating {','.join(metrics)} on {len(test)} test examples at step {run.step} "
        "(Ctrl-C stops it; nothing is written before the end)", file=sys.stderr, flush=True)
  t0 = time.perf_counter()
  results = evaluators.run_all(chosen, backend.replicate(run.params), test, run.step)
  features = {"features": config.quality.features} if quality_names else {}
  first = first_index(test)
  return {"workdir": str(workdir), "step": run.step, "params": run.params_kind,
          "params_digest": inference.params_digest(run.params), "metrics": list(metrics),
          "k": int(config.is_nll_k), "num_examples": len(test), "examples": [first, first + len(test)],
          **features, **results,
          "wall_s": time.perf_counter() - t0, "device": hardware.describe()}


def compare_folders(dirs: list[str], features: str, judge_dir: str | None) -> dict:
  """The --fid_dirs record: metrics between the two folders with the chosen feature network."""
  from vae_jax import config as config_lib
  from vae_jax import hardware
  from vae_jax.evaluators import folder_quality
  from vae_jax.features import judge as judge_lib
  from vae_jax.features.extractors import InceptionPoolFeatures, JudgeFeatures
  t0 = time.perf_counter()
  if features == "judge":
    if not judge_dir:
      raise UserError("--fid_dirs with --features judge needs --judge_dir, a judge trained by "
                      "python -m vae_jax.judge (or use --features inception)")
    network = JudgeFeatures.from_judge(judge_lib.load_judge(judge_dir))
    channels = int(network.judge.info["image_shape"][-1])
  else:
    network, channels = InceptionPoolFeatures(), 3
  record = folder_quality.compare_folders(dirs[0], dirs[1], network, channels=channels,
                                          quality_config=config_lib.base_config().quality)
  return {"fid_dirs": dirs, "features": features, **record, **network.info(),
          "wall_s": time.perf_counter() - t0, "device": hardware.describe()}


def merge_records(paths: list[str]) -> dict:
  """The --merge record of the evaluation records at `paths` (vae_jax/eval_merge.py)."""
  from vae_jax import eval_merge
  if _WORKDIR.value or _FID_DIRS.value is not None:
    raise UserError("--merge takes evaluation records only (and --output), no --workdir or --fid_dirs")
  records = []
  for path in paths:
    try:
      record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
      raise UserError(f"--merge: cannot read {path} ({e.__class__.__name__}: {e})") from None
    if not isinstance(record, dict) or not {"step", "metrics", "num_examples"} <= record.keys():
      raise UserError(f"--merge: {path} is not a record written by python -m vae_jax.evaluate")
    records.append(record)
  return eval_merge.merge(records, paths)


def _join_fid_dirs(argv: list[str]) -> list[str]:
  """`--fid_dirs A B` -> `--fid_dirs=A,B` (absl lists are comma-separated)."""
  argv = list(argv)
  for i, arg in enumerate(argv):
    if arg == "--fid_dirs" and i + 2 < len(argv) and not argv[i + 2].startswith("-"):
      return argv[:i] + [f"--fid_dirs={argv[i + 1]},{argv[i + 2]}"] + argv[i + 3:]
  return argv


def _print_record(record: dict, output: Path | None) -> None:
  from vae_jax import trainer
  if "fid_dirs" in record:
    print(f"{record['fid_dirs'][0]} vs {record['fid_dirs'][1]} ({record['num_images_a']} and "
          f"{record['num_images_b']} images, {record['features']} features): fid {record['fid']:.3f}, "
          f"kid {record['kid']:.5f} +- {record['kid_std']:.5f}, precision {record['precision']:.3f}, "
          f"recall {record['recall']:.3f}")
  else:
    start, stop = record["examples"]
    print(f"step {record['step']} of {record['workdir']} ({record['params']} params, "
          f"{record['num_examples']} test examples [{start}, {stop}), k={record['k']}): "
          f"{trainer.summary_line(record)}")
  if output is not None:
    write_json(output, record)
    print(f"wrote {output}")


def main() -> None:
  logging.set_verbosity(logging.ERROR)
  cli.parse_flags(_join_fid_dirs(sys.argv))
  output = _check_output(_OUTPUT.value)
  if _FID_DIRS.value is not None:
    if len(_FID_DIRS.value) != 2 or _WORKDIR.value:
      raise UserError("--fid_dirs takes exactly two folders, DIR_A DIR_B, and no --workdir")
    record = compare_folders(_FID_DIRS.value, _FEATURES.value or "inception", _JUDGE_DIR.value)
    _print_record(record, output)
    return
  if _MERGE.value is not None:
    _print_record(merge_records(_MERGE.value), output)
    return
  if not _WORKDIR.value:
    raise UserError("--workdir is required: the run directory train.py wrote")
  if not _METRICS.value:
    raise UserError("--metrics is empty; name at least one, e.g. --metrics is_nll,elbo")
  quality = {"features": _FEATURES.value, "num_samples": _NUM_SAMPLES.value, "judge_dir": _JUDGE_DIR.value,
             "judge_steps": _JUDGE_STEPS.value}
  from vae_jax import inference, xla_cpu
  xla_cpu.apply(inference.load_config(Path(_WORKDIR.value)))  # the run's choice, before JAX starts
  record = evaluate_run(_WORKDIR.value, _METRICS.value, k=_K.value, chunk=_CHUNK.value,
                        num_examples=_NUM.value, batch_size=_BATCH.value, quality=quality,
                        examples=None if _EXAMPLES.value is None else parse_examples(_EXAMPLES.value))
  _print_record(record, output)


def main_interruptible() -> None:
  """Ctrl-C at any point: one line, exit 130; the output is only ever written complete, at the end."""
  try:
    main()
  except KeyboardInterrupt:
    print("\ninterrupted; nothing was written", file=sys.stderr, flush=True)
    raise SystemExit(130) from None


if __name__ == "__main__":
  run_cli(main_interruptible)
