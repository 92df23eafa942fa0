"""What keeping the best of many samples buys, and what it costs.

  python benchmarks/keep_best.py --workdir DIR [--workdir DIR2 ...] --candidates 4096 --keep 64 \\
      --draws 10 --output benchmarks/results/keep_best.json

For each run and each draw d: M = --candidates prior samples (seed d), scored by the
judge's confidence, the model's ELBO of the sample (VAEs) and the realism score
(judge features against the test split); the best --keep of each score, and --keep
random samples of the same draw, are compared with the whole test split in the
judge's feature space: judge-FID, precision and recall (k = 3), class coverage.
Prints a markdown table of means ± std over draws. With 64 images the FID is
strongly biased upwards (64 points for a 128-d covariance): compare the rows with
each other, not with the 5,000-sample figures of the VAE-vs-GAN report.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from vae_jax import data, inference, keep_best, sample_metrics
from vae_jax.evaluators.sample_quality import real_features
from vae_jax.features.extractors import FEATURES


def measure(kept_features, kept_logits, real, k) -> dict[str, float]:
  precision, recall = sample_metrics.precision_recall(real, kept_features, k=k)
  coverage = sample_metrics.class_histogram(np.argmax(kept_logits, 1), kept_logits.shape[1])["class_coverage"]
  return {"fid": sample_metrics.fid(real, kept_features), "precision": precision, "recall": recall,
          "class_coverage": coverage}


def one_run(workdir: str, args) -> dict:
  run = inference.load_trained(workdir)
  network = FEATURES.get("judge")(run.config.data, None)
  test = data.load_datasets(run.config.data).test
  real, _ = real_features(network, test)
  ways = ["random", "judge", "realism"] + (["elbo"] if run.model.has_encoder else [])
  results: dict[str, list[dict]] = {w: [] for w in ways}
  t0 = time.perf_counter()
  for draw in range(args.draws):
    candidates, labels = keep_best.draw_candidates(run, args.candidates, seed=draw)
    feats, logits = network.outputs(candidates)
    rng = np.random.default_rng(draw)
    for way in ways:
      if way == "random":
        index = rng.choice(len(candidates), args.keep, replace=False)
      else:
        scores = keep_best.scores(way, run, candidates, labels, network=network, test_source=test, seed=draw)
        _, index = keep_best.keep_top(candidates, scores, args.keep)
      results[way].append(measure(feats[index], logits[index], real, args.k))
  summary = {w: {m: [float(np.mean([r[m] for r in rs])), float(np.std([r[m] for r in rs]))]
                 for m in rs[0]} for w, rs in results.items()}
  return {"workdir": workdir, "model": run.config.model.name, "dataset": run.config.data.name, "step": run.step,
          "candidates": args.candidates, "keep": args.keep, "draws": args.draws, "summary": summary,
          "wall_s": time.perf_counter() - t0}


def main() -> None:
  from absl import logging
  logging.set_verbosity(logging.ERROR)  # Orbax notes that a run's checkpoints are opened read-only
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", action="append", required=True)
  parser.add_argument("--candidates", type=int, default=4096)
  parser.add_argument("--keep", type=int, default=64)
  parser.add_argument("--draws", type=int, default=10)
  parser.add_argument("--k", type=int, default=3)
  parser.add_argument("--output", default=None)
  args = parser.parse_args()
  records = [one_run(w, args) for w in args.workdir]
  print("| run | kept by | judge-FID | precision | recall | class coverage |")
  print("| --- | --- | --- | --- | --- | --- |")
  for r in records:
    for way, s in r["summary"].items():
      cells = " | ".join(f"{s[m][0]:.3f} ± {s[m][1]:.3f}" if m != "fid" else f"{s[m][0]:.1f} ± {s[m][1]:.1f}"
                         for m in ("fid", "precision", "recall", "class_coverage"))
      print(f"| {r['dataset']} {r['model']} | {way} | {cells} |")
  if args.output:
    Path(args.output).write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
  main()
