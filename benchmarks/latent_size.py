"""How do I choose the latent size? A sweep of model.latent_dim for the MNIST MLP VAE.

  python benchmarks/latent_size.py [--dims 2,4,8,16,32,64,128] [--steps 30000] [--out runs/latent_size]

For each latent size d it trains `configs/mnist_mlp.py` with `--config.model.latent_dim=d`
in OUT/runs/d{d} (the same seed, data and schedule for every d) and evaluates the final
parameters once, at the end, on the test split: the test -ELBO with its recon and KL terms, the
IS-NLL (k = --is_nll_k importance samples on the first --is_nll_examples test images), the
active units (Cov_x E_q[z_u] > 0.01, Burda et al.) and judge-FID (--quality_samples prior
samples against the whole test split, in the features of the MNIST judge, trained once and
cached). It writes OUT/results.json (every run and the settings), OUT/report.md (a table, the
exact command and the wall time) and OUT/latent_size.png (each figure against d, log2 axis).

A run whose metrics.jsonl already has its final test line is reused, so an interrupted sweep
resumes where it stopped (an unfinished run resumes from its checkpoint through train.py).
Smoke check (a minute or two):

  python benchmarks/latent_size.py --dims 2,4 --steps 200 --is_nll_k 10 --is_nll_examples 100 \\
      --quality_samples 500 --out /tmp/ls_smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVALUATORS = ("loss", "is_nll", "active_units", "fid")
# (results key, table header, the key of the final test row of metrics.jsonl)
COLUMNS = (("neg_elbo", "test −ELBO", "neg_elbo"), ("recon", "recon", "recon"), ("kl", "KL", "kl"),
           ("is_nll", "IS-NLL", "is_nll"), ("active_units", "active units", "active_units"),
           ("fid", "judge-FID", "fid"), ("train_s", "train s", "train_s"), ("wall_s", "run wall s", None))


def train_command(dim: int, workdir: Path, args) -> list[str]:
  """train.py for latent size `dim`; evaluation (all of EVALUATORS) at the last step only."""
  return [sys.executable, str(REPO / "train.py"), "--config=configs/mnist_mlp.py", f"--workdir={workdir}",
          f"--config.data.dir={args.data_dir}", f"--config.model.latent_dim={dim}",
          f"--config.num_train_steps={args.steps}", f"--config.seed={args.seed}",
          f"--config.evaluators=({','.join(map(json.dumps, EVALUATORS))})",
          f"--config.is_nll_k={args.is_nll_k}",
          f"--config.is_nll_num_examples={args.is_nll_examples}",
          f"--config.quality.num_samples={args.quality_samples}", "--config.quality.features=judge",
          f"--config.eval_every={args.steps}", "--config.progress_bar=False"]


def final_test_row(workdir: Path, steps: int) -> dict | None:
  """The last test row of workdir/metrics.jsonl at step `steps`, if the run got that far."""
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return None
  rows = []
  for line in path.read_text().splitlines():
    try:
      rows.append(json.loads(line))
    except ValueError:  # a line cut short by a killed process
      continue
  tests = [r for r in rows if r.get("split") == "test" and r.get("step") == steps]
  return tests[-1] if tests else None


def one_run(dim: int, args) -> dict:
  """Trains (or reuses) latent size `dim`; its record, also kept in its workdir's benchmark.json."""
  workdir = args.out / "runs" / f"d{dim}"
  record_path = workdir / "benchmark.json"
  cmd = train_command(dim, workdir, args)
  final = final_test_row(workdir, args.steps)
  if final is not None and record_path.exists():
    return dict(json.loads(record_path.read_text()), reused=True)
  shown = shlex.join(["python", "train.py", *cmd[2:]])
  record = {"latent_dim": dim, "workdir": str(workdir), "command": shown, "reused": False}
  if final is None:
    print(f"[{time.strftime('%H:%M:%S')}] latent_dim {dim}: training {args.steps} steps in {workdir}",
          flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    record.update(wall_s=time.perf_counter() - t0, returncode=proc.returncode)
    final = final_test_row(workdir, args.steps)
    if proc.returncode != 0 or final is None:
      record["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
      print(f"  failed ({proc.returncode}): {record['error']}", flush=True)
      return record  # not saved: the next invocation tries again
  else:  # finished by an earlier invocation that did not write its record
    record.update(wall_s=None, returncode=0, reused=True)
  record.update({key: final.get(metric) for key, _, metric in COLUMNS if metric},
                is_nll_stderr=final.get("is_nll_stderr"), steps=final.get("step"),
                judge_test_accuracy=final.get("judge_test_accuracy"))
  record_path.write_text(json.dumps(record, indent=2) + "\n")
  print(f"  d={dim}: test -ELBO {_cell(record.get('neg_elbo'))}, IS-NLL {_cell(record.get('is_nll'))}, "
        f"active units {record.get('active_units')}, judge-FID {_cell(record.get('fid'))}", flush=True)
  return record


def _cell(value, stderr=None) -> str:
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return "–"
  if isinstance(value, int):
    return str(value)
  text = f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
  return text + (f" ± {stderr:.2f}" if stderr is not None else "")


def table(records: list[dict]) -> str:
  lines = ["| latent dim | " + " | ".join(header for _, header, _ in COLUMNS) + " |",
           "| --- " * (len(COLUMNS) + 1) + "|"]
  for r in records:
    if "error" in r:
      lines.append(f"| {r['latent_dim']} | failed: {r['error']} |" + " |" * (len(COLUMNS) - 1))
      continue
    cells = [_cell(r.get(key), r.get("is_nll_stderr") if key == "is_nll" else None) for key, _, _ in COLUMNS]
    lines.append(f"| {r['latent_dim']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def reading(records: list[dict]) -> str:
  """Which sizes the figures favour: the lowest IS-NLL, the smallest size within 1 nat of it."""
  done = [r for r in records if r.get("is_nll") is not None]
  if not done:
    return ""
  best = min(done, key=lambda r: r["is_nll"])
  near = min((r for r in done if r["is_nll"] <= best["is_nll"] + 1.0), key=lambda r: r["latent_dim"])
  lines = [f"- Lowest IS-NLL: d = {best['latent_dim']} ({best['is_nll']:.2f} nats); the smallest d within "
           f"1 nat of it: d = {near['latent_dim']} ({near['is_nll']:.2f})."]
  fids = [r for r in done if r.get("fid") is not None]
  if fids:
    f = min(fids, key=lambda r: r["fid"])
    lines.append(f"- Lowest judge-FID: d = {f['latent_dim']} ({f['fid']:.2f}).")
  saturated = [r for r in done if r.get("active_units") is not None and r["active_units"] < r["latent_dim"]]
  if saturated:
    lines.append("- Units left unused (active < d): " + ", ".join(
        f"d = {r['latent_dim']}: {r['active_units']} active" for r in saturated) + ".")
  return "\n".join(lines) + "\n"


def plot(records: list[dict], path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  done = sorted((r for r in records if "error" not in r), key=lambda r: r["latent_dim"])
  d = [r["latent_dim"] for r in done]
  panels = (("nats per image (lower is better)", (("neg_elbo", "test −ELBO"), ("is_nll", "IS-NLL"))),
            ("nats per image", (("recon", "recon"), ("kl", "KL"))),
            ("units", (("active_units", "active units"),)),
            ("judge-FID (lower is better)", (("fid", "judge-FID"),)))
  fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
  for ax, (ylabel, series) in zip(axes, panels):
    for key, label in series:
      points = [(x, r[key]) for x, r in zip(d, done) if r.get(key) is not None]
      if points:
        ax.plot(*zip(*points), marker="o", label=label)
    if ylabel == "units" and d:
      ax.plot(d, d, linestyle=":", color="grey", label="latent dim")
    ax.set_xscale("log", base=2)
    ax.set_xticks(d, [str(x) for x in d])
    ax.set_xlabel("latent dim")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
  fig.suptitle("MNIST MLP VAE: test figures against the latent size")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def report(records: list[dict], args, wall_s: float, command: str) -> str:
  reused = [str(r["latent_dim"]) for r in records if r.get("reused") or r.get("wall_s") is None]
  return (f"# Latent size: configs/mnist_mlp.py with model.latent_dim swept\n\n"
          f"{args.steps} steps (batch 128, Adam 1e-3), seed {args.seed}; {os.cpu_count()} CPU cores. "
          f"Final parameters on the test split: −ELBO (single sample), recon and KL in nats per image; "
          f"IS-NLL with k = {args.is_nll_k} on the first {args.is_nll_examples} test images (± its "
          f"standard error); active units (Cov_x E_q[z_u] > 0.01); judge-FID of {args.quality_samples} "
          f"prior samples (likelihood mean) against the whole test split. `train s` is time in "
          f"training steps only; `run wall s` the whole train.py process (compiling, evaluation, "
          f"checkpoints).\n\n" + table(records) + "\n" + reading(records) +
          f"\nCommand: `{command}`\n\nTotal wall time of this invocation: {wall_s:.0f} s"
          + (f" (runs reused from earlier invocations: d = {', '.join(reused)})" if reused else "")
          + ".\n\n![figures against the latent size](latent_size.png)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dims", default="2,4,8,16,32,64,128", help="latent sizes, comma-separated")
  parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data" / "mnist"),
                      help="MNIST IDX files (default: ../shared/data/mnist beside the checkout)")
  parser.add_argument("--steps", type=int, default=30_000, help="training steps per run (mnist_mlp: 30000)")
  parser.add_argument("--out", default="runs/latent_size")
  parser.add_argument("--is_nll_k", type=int, default=1000)
  parser.add_argument("--is_nll_examples", type=int, default=2000)
  parser.add_argument("--quality_samples", type=int, default=10_000)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  try:
    args.dims = sorted({int(d) for d in args.dims.split(",") if d.strip()})
  except ValueError:
    parser.error(f"--dims {args.dims!r}: give whole numbers separated by commas, e.g. 2,4,8")
  if not args.dims or min(args.dims) < 1:
    parser.error("--dims needs latent sizes >= 1")
  args.data_dir = str(Path(args.data_dir).resolve())
  args.out = Path(args.out).resolve()
  return args


def main(argv: list[str]) -> None:
  t0 = time.perf_counter()
  command = shlex.join(["python", "benchmarks/latent_size.py", *argv])
  args = parse_args(argv)
  args.out.mkdir(parents=True, exist_ok=True)
  records = []
  for dim in args.dims:
    records.append(one_run(dim, args))
    (args.out / "results.json").write_text(json.dumps({"records": records}, indent=2) + "\n")
  wall_s = time.perf_counter() - t0
  settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
  (args.out / "results.json").write_text(json.dumps(
      {"command": command, "wall_s": wall_s, "settings": settings, "records": records}, indent=2) + "\n")
  text = report(records, args, wall_s, command)
  (args.out / "report.md").write_text(text)
  plot(records, args.out / "latent_size.png")
  print(text)
  if any("error" in r for r in records):
    raise SystemExit(1)


if __name__ == "__main__":
  main(sys.argv[1:])
