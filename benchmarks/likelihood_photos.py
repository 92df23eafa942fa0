"""Bits/dim of the `gaussian` and `dlm` likelihoods on real colour photos available offline.

  pip install -e ".[bench]"      # scikit-image ships the photos
  python benchmarks/likelihood_photos.py [--steps 3000] [--k 100] [--workdir runs/photos]

1. Cuts non-overlapping 32x32 crops from the natural RGB photos scikit-image ships (each photo
   halved first), into WORKDIR/crops/<photo>/crop_NNNN.png; the folder loader's per-file hash
   holds out 10% for the test split.
2. Trains the same conv VAE (3x3 convs 32-64-128, latent 64, Adam 1e-3, batch 64) twice: with
   the `gaussian` likelihood (learned per-channel sigma, uniform dequantisation) and with `dlm`
   (10 logistic components, autoregressive RGB).
3. Evaluates both with `python -m vae_jax.evaluate --metrics is_nll,elbo --k K`: bits/dim of the
   8-bit test crops (the Gaussian's dequantised bound includes its D log 256 offset).

Writes benchmarks/results/<device>_likelihood_photos.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "ihc", "motorcycle_left",
          "motorcycle_right", "retina", "rocket")


def make_crops(out: Path, size: int = 32) -> int:
  """Writes the crops; returns how many."""
  import skimage
  from PIL import Image
  data_dir = Path(skimage.data_dir)
  count = 0
  for name in PHOTOS:
    path = next(data_dir.glob(f"{name}.*"))
    image = Image.open(path).convert("RGB")
    image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    for top in range(0, image.height - size + 1, size):
      for left in range(0, image.width - size + 1, size):
        image.crop((left, top, left + size, top + size)).save(folder / f"crop_{count:05d}.png")
        count += 1
  return count


def _run(args: list[str]) -> float:
  t0 = time.perf_counter()
  subprocess.run([sys.executable, *args], cwd=REPO, check=True)
  return time.perf_counter() - t0


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=3000)
  parser.add_argument("--k", type=int, default=100)
  parser.add_argument("--workdir", default="runs/photos")
  args = parser.parse_args()
  workdir = (REPO / args.workdir).resolve()
  crops = workdir / "crops"
  num = make_crops(crops) if not crops.exists() else sum(1 for _ in crops.rglob("*.png"))
  common = ["--config=configs/folder64.py", f"--config.data.dir={crops}", "--config.data.image_size=32",
            "--config.model.channels=(32,64,128)", "--config.model.latent_dim=64", "--config.batch_size=64",
            "--config.eval_batch_size=100", "--config.data.test_fraction=0.1", f"--config.num_train_steps={args.steps}",
            "--config.eval_every=100000", "--config.sample_every=100000", "--config.progress_bar=False",
            "--config.log_every=500"]
  variants = {"gaussian": ["--config.model.likelihood=gaussian", "--config.model.learn_std=True"],
              "dlm": ["--config.model.likelihood=dlm", "--config.model.dlm_mixtures=10"]}
  results = {}
  for name, extra in variants.items():
    run_dir = workdir / name
    train_s = _run(["train.py", *common, *extra, f"--workdir={run_dir}"])
    out = workdir / f"{name}_eval.json"
    _run(["-m", "vae_jax.evaluate", f"--workdir={run_dir}", "--metrics=is_nll,elbo", f"--k={args.k}",
          "--chunk=50", f"--output={out}"])
    record = json.loads(out.read_text())
    results[name] = {"train_wall_s": train_s, **{k: record[k] for k in (
        "step", "num_examples", "k", "is_nll", "is_nll_stderr", "is_nll_bits_per_dim", "neg_elbo",
        "bits_per_dim", "device")}}
  summary = {"num_crops": num, "steps": args.steps, "results": results}
  device = results["dlm"]["device"].split(" x ")[-1].lower()
  out = REPO / "benchmarks" / "results" / f"{'cpu' if 'cpu' in device else device}_likelihood_photos.json"
  out.write_text(json.dumps(summary, indent=2) + "\n")
  print(f"{num} crops, {args.steps} steps each\n")
  print("| likelihood | test ELBO bits/dim | IS-NLL bits/dim (k) | train wall s |")
  print("| --- | --- | --- | --- |")
  for name, r in results.items():
    print(f"| `{name}` | {r['bits_per_dim']:.3f} | {r['is_nll_bits_per_dim']:.3f} ({r['k']}) | {r['train_wall_s']:.0f} |")


if __name__ == "__main__":
  main()
