"""JAX (this library) vs the PyTorch reference, on the same model, loss, batch, optimizer and data.

  python benchmarks/compare.py --config mnist_mlp --mode throughput --steps 1000
  python benchmarks/compare.py --config mnist_conv --mode throughput --steps 200
  python benchmarks/compare.py --config mnist_mlp --mode quality --steps 2000

Prints one JSON object. The JAX side is the real training loop
(`vae_jax.trainer.train_and_evaluate`, as `train.py` runs it: grain input
pipeline, sharding, jitted donated step); its images/s excludes the first
logging interval (compilation) and evaluation: it is the overall rate over
the remaining intervals (images / seconds), as the PyTorch side reports it.
Sampling is the jitted
`sampling.prior_samples` at batch 1024. The PyTorch side runs
`benchmarks/torch_vae.py` in a subprocess (needs `pip install torch`), so the
two never share the CPU. Timings mean something only on an idle machine: the
output records the load average before each side. On a noisy (shared) machine
use `--repeats N`: the two sides then alternate N times, and the ratio is that
of the two medians; every round is in the output.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from vae_jax import inference, metrics_log, sampling, trainer  # noqa: E402

TORCH_MODEL = {"mnist_mlp": "mlp", "mnist_conv": "conv"}


def apply_override(config, item: str) -> None:
  """Sets config[KEY] from "KEY=VALUE": a dotted key and a Python literal."""
  key, value = item.split("=", 1)
  *parents, leaf = key.split(".")
  target = config
  for p in parents:
    target = target[p]
  target[leaf] = ast.literal_eval(value)


def jax_config(name: str, data_dir: str, steps: int, *, quality: bool, overrides=()):
  config = importlib.import_module(f"configs.{name}").get_config()
  for item in overrides:
    apply_override(config, item)
  config.data.dir = data_dir
  config.num_train_steps = steps
  config.log_every = max(1, steps // 10)
  config.eval_every = config.sample_every = config.checkpoint_every = steps
  config.progress_bar = False
  if not quality:  # throughput: keep evaluation short, it is not timed
    config.data.num_test_examples = 1000
  return config


def jax_side(name: str, data_dir: str, steps: int, *, quality: bool, overrides=()) -> dict:
  load = os.getloadavg()[0]
  with tempfile.TemporaryDirectory() as workdir:
    t0 = time.perf_counter()
    config = jax_config(name, data_dir, steps, quality=quality, overrides=overrides)
    final = trainer.train_and_evaluate(config, workdir)
    wall = time.perf_counter() - t0
    records = metrics_log.read(Path(workdir) / "metrics.jsonl")
    rates = [r["images_per_s"] for r in records if r["split"] == "train"][1:]  # skip compile
    # Equal intervals: the overall rate (images / seconds) is the harmonic mean of the rates.
    train_rate = len(rates) / sum(1.0 / r for r in rates)
    run = inference.load_trained(workdir)
  out = {"impl": "jax", "jax_version": jax.__version__, "device": str(jax.devices()[0].device_kind),
         "num_devices": jax.local_device_count(), "steps": steps, "load_avg_before": load,
         "wall_seconds": round(wall, 1), "parallel": config.parallel,
         "steps_per_call": config.steps_per_call, "overrides": list(overrides)}
  if quality:
    out.update(test_neg_elbo=final["neg_elbo"], test_recon=final["recon"], test_kl=final["kl"])
    return out
  out["train_images_per_s"] = train_rate
  out["sample_images_per_s"] = jax_sample_rate(run)
  return out


def jax_sample_rate(run, batch: int = 1024, repeats: int = 50) -> float:
  key = jax.random.key(0)
  x = sampling.prior_samples(run.params, key, 1.0, model=run.model, num=batch)
  x.block_until_ready()
  t0 = time.perf_counter()
  for i in range(repeats):
    x = sampling.prior_samples(run.params, jax.random.fold_in(key, i), 1.0, model=run.model,
                               num=batch)
  x.block_until_ready()
  return batch * repeats / (time.perf_counter() - t0)


def torch_side(name: str, data_dir: str, steps: int, *, quality: bool, threads: int) -> dict:
  load = os.getloadavg()[0]
  cmd = [sys.executable, str(REPO / "benchmarks" / "torch_vae.py"), "--data_dir", data_dir,
         "--steps", str(steps), "--threads", str(threads), "--model", TORCH_MODEL[name],
         "--mode", "quality" if quality else "throughput"]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode != 0:
    return {"impl": "torch", "error": proc.stderr.strip().splitlines()[-1:]}
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  out["load_avg_before"] = load
  return out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", choices=sorted(TORCH_MODEL), default="mnist_mlp")
  ap.add_argument("--mode", choices=["throughput", "quality"], default="throughput")
  ap.add_argument("--steps", type=int, default=1000)
  ap.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
  ap.add_argument("--threads", type=int, default=os.cpu_count())
  ap.add_argument("--override", action="append", default=[],
                  help="config override KEY=VALUE (Python literal), e.g. parallel='jit'")
  ap.add_argument("--no_torch", action="store_true", help="JAX only (e.g. on a GPU machine)")
  ap.add_argument("--repeats", type=int, default=1,
                  help="throughput: alternate the two sides this many times; report medians")
  args = ap.parse_args()
  quality = args.mode == "quality"
  rounds = 1 if quality else max(1, args.repeats)
  result = {"config": args.config, "mode": args.mode, "rounds": []}
  for _ in range(rounds):
    one = {"jax": jax_side(args.config, args.data_dir, args.steps, quality=quality,
                           overrides=args.override)}
    if not args.no_torch:
      one["torch"] = torch_side(args.config, args.data_dir, args.steps, quality=quality,
                                threads=args.threads)
    result["rounds"].append(one)
  result.update(result["rounds"][-1] if rounds == 1 else summarise(result["rounds"]))
  if rounds == 1:
    del result["rounds"]
  if not quality and "train_images_per_s" in result.get("torch", {}):
    for what in ("train", "sample"):
      result[f"{what}_speed_ratio_jax_over_torch"] = (
          result["jax"][f"{what}_images_per_s"] / result["torch"][f"{what}_images_per_s"])
  print(json.dumps(result, indent=1))


def summarise(rounds: list[dict]) -> dict:
  """Per side, the median over rounds of each rate (and the range), for the ratio of medians."""
  out = {}
  for side in rounds[0]:
    runs = [r[side] for r in rounds if "train_images_per_s" in r[side]]
    if not runs:
      out[side] = rounds[-1][side]
      continue
    out[side] = {"impl": side, "median_over_rounds": len(runs)}
    for key in ("train_images_per_s", "sample_images_per_s"):
      values = [run[key] for run in runs]
      out[side][key] = float(np.median(values))
      out[side][key.replace("_per_s", "_per_s_range")] = [min(values), max(values)]
  return out


if __name__ == "__main__":
  main()
