"""Missing data on MNIST: MIWAE against mean imputation and against a VAE trained on complete data.

  python benchmarks/missing_data.py --out benchmarks/results/missing_data

Trains three `mnist_mlp` models with the importance-weighted objective (k = --iwae_k):
  complete   on complete images (`--config.loss=iwae`)
  mcar       with 50% of the pixels missing at random (`data.missing=mcar`, `loss=miwae`)
  block      with a random 14x14 square missing from every image (`data.missing=block`, `loss=miwae`)
then fills the test images' missing pixels under each pattern (the same fixed test masks the
MIWAE runs were scored on) with
  mean       each pixel's mean over the observed training pixels (the MIWAE paper's baseline)
  complete   the complete-data VAE with the same importance-weighted imputation
  miwae      the model trained on data missing by that pattern
(single imputation: the importance-weighted conditional mean with K = --k draws) and reports
the mean squared error on the missing pixels (grey levels in [0, 1]) and the MNIST judge's
accuracy on the filled images (and, for reference, on the complete and the zero-filled ones).
Writes OUT/results.json, OUT/report.md and OUT/<pattern>.png (rows: original, input with the
missing pixels grey, mean, complete-data VAE, MIWAE single, two MIWAE multiple imputations).
Runs (under --runs) are reused when their workdir holds a finished run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vae_jax import images, imputation, inference  # noqa: E402
from vae_jax.data import load_datasets  # noqa: E402
from vae_jax.data.missing import MissingPattern  # noqa: E402
from vae_jax.data.source import gather_examples  # noqa: E402

PATTERNS = {"mcar": ["--config.data.missing=mcar", "--config.data.missing_rate=0.5"],
            "block": ["--config.data.missing=block", "--config.data.missing_block=14"]}


def train(name: str, args) -> Path:
  """The run `name` (complete, mcar or block), trained unless its workdir holds a finished run."""
  workdir = Path(args.runs) / name
  if (workdir / "metrics.jsonl").exists() and '"split": "test"' in (workdir / "metrics.jsonl").read_text():
    return workdir
  loss = "iwae" if name == "complete" else "miwae"
  cmd = [sys.executable, str(REPO / "train.py"), "--config=mnist_mlp", f"--workdir={workdir}",
         f"--config.data.dir={args.data_dir}", f"--config.loss={loss}", f"--config.iwae_k={args.iwae_k}",
         f"--config.num_train_steps={args.steps}", "--config.eval_every=1000000", "--config.sample_every=1000000",
         "--config.progress_bar=False", *PATTERNS.get(name, [])]
  print(f"[{time.strftime('%H:%M:%S')}] training {name}: {' '.join(cmd[1:])}", flush=True)
  t0 = time.time()
  subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
  (workdir / "benchmark_train_s.txt").write_text(f"{time.time() - t0:.0f}\n")
  return workdir


def mean_image(pattern: MissingPattern, config) -> np.ndarray:
  """Each pixel's mean grey level over the training images where it is observed: [H, W, 1] in [0, 1]."""
  config = config.copy_and_resolve_references()
  config.data.missing = ""
  train = load_datasets(config.data).train
  total = count = 0.0
  for start in range(0, len(train), 5000):
    idx = np.arange(start, min(start + 5000, len(train)))
    x, _ = gather_examples(train, idx)
    obs = pattern.observed("train", idx, x.shape[1:3])
    total = total + np.sum(x / 255.0 * obs, axis=0)
    count = count + np.sum(obs, axis=0)
  return total / np.maximum(count, 1)


def labelled_test(config):
  """The complete test split with its labels (for the judge's accuracy)."""
  config = config.copy_and_resolve_references()
  config.data.labels, config.data.missing = True, ""
  return load_datasets(config.data).test


def fill(run, x, obs, args, *, num_imputations: int = 0) -> imputation.Imputed:
  keys = jax.random.split(jax.random.key(args.seed), len(x))
  return imputation.impute(run.params, x, obs, keys, model=run.model, num_samples=args.k,
                           num_imputations=num_imputations)


def evaluate(pattern_name: str, runs: dict, judge, args) -> tuple[dict, np.ndarray]:
  """Per method: missing-pixel MSE and judge accuracy over the test images; and a picture grid."""
  miwae = inference.load_trained(runs[pattern_name])
  pattern = MissingPattern.from_config(miwae.config.data)
  complete = inference.load_trained(runs["complete"])
  test = labelled_test(complete.config)
  mean_fill = mean_image(pattern, complete.config)
  sums = {m: {"sq": 0.0, "n": 0.0, "correct": 0} for m in ("mean", "complete", "miwae", "zero", "original")}
  ess = []
  n = min(args.examples, len(test))
  for start in range(0, n, args.batch):
    idx = np.arange(start, min(start + args.batch, n))
    x, y = gather_examples(test, idx)
    obs = pattern.observed("test", idx, x.shape[1:3])
    given = x / 255.0
    filled = {"original": given, "zero": given * obs, "mean": np.where(obs, given, mean_fill[None]),
              "complete": np.asarray(fill(complete, x, obs, args).single)}
    out = fill(miwae, x, obs, args)
    filled["miwae"], ess = np.asarray(out.single), ess + list(np.asarray(out.effective_sample_size))
    missing = np.broadcast_to(~obs, x.shape)
    for method, images_ in filled.items():
      sums[method]["sq"] += float(np.sum(np.square(images_ - given) * missing))
      sums[method]["n"] += float(np.sum(missing))
      _, logits = judge.outputs(images.to_uint8(images_))
      sums[method]["correct"] += int(np.sum(np.argmax(logits, 1) == y))
  result = {m: {"missing_mse": s["sq"] / s["n"], "judge_accuracy": s["correct"] / n} for m, s in sums.items()}
  result["original"].pop("missing_mse")
  result["miwae"]["median_effective_sample_size"] = float(np.median(ess))
  return result, picture(miwae, complete, test, pattern, mean_fill, args)


def picture(miwae, complete, test, pattern, mean_fill, args, num: int = 10) -> np.ndarray:
  """Rows: original, input (missing grey), mean, complete-data VAE, MIWAE, two MIWAE resamples."""
  idx = np.arange(num)
  x, _ = gather_examples(test, idx)
  obs = pattern.observed("test", idx, x.shape[1:3])
  given = x / 255.0
  out = fill(miwae, x, obs, args, num_imputations=2)
  rows = [given, np.where(obs, given, 0.5), np.where(obs, given, mean_fill[None]),
          np.asarray(fill(complete, x, obs, args).single), np.asarray(out.single), *np.asarray(out.multiple)]
  return images.grid(images.to_uint8(np.concatenate(rows)), ncol=num)


def report(results: dict, args, wall_s: float) -> str:
  lines = ["# Missing data on MNIST (mnist_mlp, importance-weighted imputation)", "",
           f"Command: `python benchmarks/missing_data.py {' '.join(sys.argv[1:])}`; {args.steps} training steps "
           f"per model (k = {args.iwae_k}), K = {args.k} imputation draws, first {args.examples} test images; "
           f"wall {wall_s / 60:.0f} min.", "",
           "| pattern | method | MSE on missing pixels | judge accuracy |", "|---|---|---|---|"]
  names = {"original": "complete image (reference)", "zero": "zeros (no imputation)", "mean": "mean imputation",
           "complete": "VAE trained on complete data", "miwae": "MIWAE (trained on this pattern)"}
  for pattern, res in results["patterns"].items():
    for method in ("original", "zero", "mean", "complete", "miwae"):
      mse = res[method].get("missing_mse")
      lines.append(f"| {pattern} | {names[method]} | {'–' if mse is None else f'{mse:.4f}'} | "
                   f"{res[method]['judge_accuracy']:.4f} |")
  return "\n".join(lines) + "\n"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", default="benchmarks/results/missing_data")
  p.add_argument("--runs", default="runs/missing_data", help="the training runs' workdirs")
  p.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
  p.add_argument("--steps", type=int, default=30000)
  p.add_argument("--iwae_k", type=int, default=5)
  p.add_argument("--k", type=int, default=1000, help="importance draws per imputation")
  p.add_argument("--examples", type=int, default=10000)
  p.add_argument("--batch", type=int, default=250)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  t0 = time.time()
  out = Path(args.out)
  runs = {name: train(name, args) for name in ("complete", "mcar", "block")}
  from vae_jax.features.extractors import FEATURES
  judge = FEATURES.get("judge")(inference.load_config(runs["complete"]).data, None)
  results = {"runs": {k: str(v) for k, v in runs.items()}, "patterns": {}, "args": vars(args)}
  for pattern in PATTERNS:
    results["patterns"][pattern], grid = evaluate(pattern, runs, judge, args)
    out.mkdir(parents=True, exist_ok=True)
    images.save_image(Image.fromarray(grid[..., 0]), out / f"{pattern}.png")
    print(json.dumps({pattern: results["patterns"][pattern]}), flush=True)
  wall = time.time() - t0
  results["wall_s"] = wall
  (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  (out / "report.md").write_text(report(results, args, wall))
  print(report(results, args, wall))


if __name__ == "__main__":
  main()
