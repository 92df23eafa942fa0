"""VAE vs GAN on the same footing: equal wall-clock training budgets, the same judge, the same metrics.

  python benchmarks/vae_vs_gan.py --datasets mnist,fashion_mnist --budgets 600,1800 --seeds 0,1,2 \\
      --out benchmarks/results/vae_vs_gan

For each dataset, model (the conv VAE, `<dataset>_conv`, and the DCGAN,
`<dataset>_dcgan`), budget and seed it trains `train.py ... --config.max_train_s=BUDGET`
(training steps only; compiling counts, evaluation does not) with the
sample-quality evaluators on (the dataset's judge, trained once and cached),
then measures sample throughput and, for the VAE, the IS-NLL (k = --is_nll_k on
the first --is_nll_examples test images). It writes OUT/report.md (a table
per dataset: mean ± std over seeds), OUT/results.json (every run), and
OUT/<dataset>_curves.png (judge-FID, precision and recall against training
seconds). Runs are skipped when their workdir already holds a finished run,
so an interrupted report resumes (an unfinished run is started again from scratch); the report covers every finished run under OUT. Run it on a quiet machine: a wall-clock
budget measures the machine as much as the model.

Failures are counted per run: `diverged` (train.py failed, or a non-finite
final loss) and `collapsed` (class coverage below 0.5 or recall below 0.05 at
the end: most classes or most of the data manifold missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vae_jax import run_lock
from vae_jax.errors import UserError

REPO = Path(__file__).resolve().parents[1]
QUALITY = ("fid", "kid", "precision_recall", "class_coverage")
DATA_DIRS = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}
MODELS = {"vae": "{dataset}_conv", "dcgan": "{dataset}_dcgan"}
FIGURES = ("fid", "kid", "precision", "recall", "class_coverage", "is_nll", "train_images_per_s",
           "sample_images_per_s", "steps")


def train_command(dataset: str, model: str, budget: float, seed: int, workdir: Path, args) -> list[str]:
  config = MODELS[model].format(dataset=dataset)
  evaluators = ("loss",) + QUALITY
  return [sys.executable, str(REPO / "train.py"), f"--config={config}", f"--workdir={workdir}",
          f"--config.data.dir={Path(args.data_root) / DATA_DIRS[dataset]}", f"--config.seed={seed}",
          f"--config.max_train_s={budget}", "--config.num_train_steps=10000000",
          f"--config.evaluators={evaluators!r}", f"--config.quality.num_samples={args.num_samples}",
          f"--config.quality.judge_steps={args.judge_steps}",
          f"--config.eval_every={args.eval_every[model]}", "--config.sample_every=10000000",
          "--config.checkpoint_every=10000000", "--config.log_every=100", "--config.progress_bar=False"]


def sample_rate(workdir: Path, num: int = 2000) -> float:
  """Generated images per second (jitted, after a warm-up call), batches of 500."""
  import jax
  from vae_jax import inference
  from vae_jax.evaluators.sample_quality import generate_images
  run = inference.load_trained(workdir)
  generate_images(run.params, jax.random.key(0), 500, model=run.model, batch_size=500)
  t0 = time.perf_counter()
  generate_images(run.params, jax.random.key(1), num, model=run.model, batch_size=500)
  return num / (time.perf_counter() - t0)


def is_nll(workdir: Path, k: int, examples: int) -> float:
  from vae_jax import evaluate
  return evaluate.evaluate_run(workdir, ["is_nll"], k=k, num_examples=examples, chunk=min(k, 100))["is_nll"]


def read_run(workdir: Path) -> dict:
  """The final test row, the test rows over time, the mean training throughput."""
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
  tests = [r for r in rows if r["split"] == "test"]
  train = [r for r in rows if r["split"] == "train"]
  final = tests[-1] if tests else {}
  return {"final": final, "curve": [{k: r.get(k) for k in ("step", "train_s", "fid", "precision", "recall")}
                                    for r in tests],
          "train_images_per_s": float(np.median([r["images_per_s"] for r in train[1:]] or [np.nan])),
          "final_loss": train[-1]["loss"] if train else float("nan")}


def one_run(dataset: str, model: str, budget: float, seed: int, args) -> dict:
  workdir = Path(args.out) / "runs" / f"{dataset}_{model}_{int(budget)}s_seed{seed}"
  record_path = workdir / "benchmark.json"
  if record_path.exists():
    return json.loads(record_path.read_text())
  if workdir.exists():  # an interrupted run: resuming it would grant a second budget
    if run_lock.is_locked(workdir):
      sys.exit(f"error: {workdir} is being trained by {run_lock.holder(workdir)}; not removing it")
    print(f"removing the unfinished run {workdir}", flush=True)
    shutil.rmtree(workdir)
  cmd = train_command(dataset, model, budget, seed, workdir, args)
  print(f"[{time.strftime('%H:%M:%S')}] {dataset} {model} budget {budget:.0f} s seed {seed}", flush=True)
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
  record = {"dataset": dataset, "model": model, "budget_s": budget, "seed": seed, "workdir": str(workdir),
            "command": " ".join(cmd[1:]), "returncode": proc.returncode}
  if proc.returncode != 0:
    record.update(diverged=True, collapsed=False, error=proc.stderr.strip().splitlines()[-1:])
  else:
    run = read_run(workdir)
    final = run["final"]
    record.update({k: final.get(k) for k in ("fid", "kid", "kid_std", "precision", "recall", "class_coverage",
                                             "class_entropy", "judge_test_accuracy")},
                  steps=final.get("step"), curve=run["curve"], train_images_per_s=run["train_images_per_s"],
                  sample_images_per_s=sample_rate(workdir),
                  diverged=not np.isfinite(run["final_loss"]),
                  collapsed=(final.get("class_coverage", 1.0) < 0.5 or final.get("recall", 1.0) < 0.05))
    if model == "vae":
      record["is_nll"] = is_nll(workdir, args.is_nll_k, args.is_nll_examples)
  workdir.mkdir(parents=True, exist_ok=True)
  record_path.write_text(json.dumps(record, indent=2) + "\n")
  return record


def _mean_std(values) -> str:
  values = [v for v in values if v is not None and np.isfinite(v)]
  if not values:
    return "–"
  mean, std = float(np.mean(values)), float(np.std(values))
  fmt = "{:.3f}" if abs(mean) < 10 else "{:.1f}" if abs(mean) < 1000 else "{:.0f}"
  return fmt.format(mean) + (" ± " + fmt.format(std) if len(values) > 1 else "")


def table(records: list[dict], dataset: str) -> str:
  lines = [f"\n### {dataset}\n", "| model | budget | seeds | steps | judge-FID | KID | precision | recall | "
           "class coverage | IS-NLL (VAE) | train img/s | sample img/s | failures |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  groups: dict[tuple, list[dict]] = {}
  for r in records:
    if r["dataset"] == dataset:
      groups.setdefault((r["model"], r["budget_s"]), []).append(r)
  for (model, budget), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    cells = [_mean_std([r.get(k) for r in rs]) for k in FIGURES]
    cells[8] = f"{np.mean([r.get('steps') or 0 for r in rs]):.0f}"
    failures = sum(bool(r.get("diverged")) for r in rs), sum(bool(r.get("collapsed")) for r in rs)
    lines.append(f"| {model} | {budget / 60:g} min | {len(rs)} | {cells[8]} | {cells[0]} | {cells[1]} | "
                 f"{cells[2]} | {cells[3]} | {cells[4]} | {cells[5]} | {cells[6]} | {cells[7]} | "
                 f"{failures[0]} diverged, {failures[1]} collapsed |")
  return "\n".join(lines) + "\n"


def plot(records: list[dict], dataset: str, path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 3, figsize=(14, 4))
  colours = {"vae": "tab:blue", "dcgan": "tab:red"}
  for r in records:
    if r["dataset"] != dataset or not r.get("curve"):
      continue
    t = [c["train_s"] for c in r["curve"]]
    for ax, key in zip(axes, ("fid", "precision", "recall")):
      ax.plot(t, [c[key] for c in r["curve"]], color=colours[r["model"]], alpha=0.7,
              label=f"{r['model']} seed {r['seed']} ({r['budget_s'] / 60:g} min)")
  for ax, key in zip(axes, ("judge-FID (lower is better)", "precision", "recall")):
    ax.set_xlabel("training seconds")
    ax.set_title(f"{dataset}: {key}")
  axes[0].set_yscale("log")
  handles, labels = axes[0].get_legend_handles_labels()
  unique = dict(zip(labels, handles))
  axes[0].legend(unique.values(), unique.keys(), fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--datasets", default="mnist,fashion_mnist")
  parser.add_argument("--budgets", default="600,1800", help="seconds of training, comma-separated")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--models", default="vae,dcgan")
  parser.add_argument("--out", default="benchmarks/results/vae_vs_gan")
  parser.add_argument("--data_root", default=str(REPO.parent / "shared" / "data"))
  parser.add_argument("--num_samples", type=int, default=5000)
  parser.add_argument("--vae_eval_every", type=int, default=2000)
  parser.add_argument("--gan_eval_every", type=int, default=1000)
  parser.add_argument("--judge_steps", type=int, default=4000, help="for a judge trained on first use")
  parser.add_argument("--is_nll_k", type=int, default=1000)
  parser.add_argument("--is_nll_examples", type=int, default=1000)
  args = parser.parse_args()
  args.eval_every = {"vae": args.vae_eval_every, "dcgan": args.gan_eval_every}
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  try:
    run_lock.acquire(out)  # its descriptor stays open until exit
  except UserError as e:
    sys.exit(f"error: {e}")
  records = []
  for dataset in args.datasets.split(","):
    for budget in [float(b) for b in args.budgets.split(",")]:
      for seed in [int(s) for s in args.seeds.split(",")]:
        for model in args.models.split(","):
          records.append(one_run(dataset, model, budget, seed, args))
          (out / "results.json").write_text(json.dumps(records, indent=2) + "\n")
  # The report covers every finished run under OUT (earlier invocations' too, e.g. other seeds).
  records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/benchmark.json"))]
  (out / "results.json").write_text(json.dumps(records, indent=2) + "\n")
  import jax
  header = (f"# VAE vs GAN\n\n{jax.device_count()} x {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores; "
            f"judge-FID etc. on {args.num_samples} samples against the whole test split; IS-NLL k = "
            f"{args.is_nll_k} on the first {args.is_nll_examples} test images.\n")
  datasets = sorted({r["dataset"] for r in records}, key=lambda d: d != "mnist")
  report = header + "".join(table(records, d) for d in datasets)
  (out / "report.md").write_text(report + "\n")
  for dataset in datasets:
    plot(records, dataset, out / f"{dataset}_curves.png")
  print(report)


if __name__ == "__main__":
  main()
