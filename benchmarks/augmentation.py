"""Does augmentation help a small folder? Flips and crops on a few hundred 64x64 photos.

  python benchmarks/augmentation.py [--steps 4000] [--seeds 0,1,2] [--out benchmarks/results/augmentation]

The folder: 64x64 crops (stride 64, at most --per_photo each) of scikit-image's sample photos, one
subfolder per photo (so the judge, a classifier of which photo a crop came from, has classes).
For each seed it trains an MLP VAE with a Gaussian likelihood on it (`configs/folder64.py` with an
MLP, so it runs on a CPU) without augmentation and with `data.augment_flip=True
data.augment_crop=8`, then reports the test -ELBO (bits/dim) and judge-FID (--num_samples prior
samples against the test crops, in the features of the folder's judge, trained once and cached).
Writes OUT/results.json and OUT/report.md. Needs scikit-image (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "ihc", "motorcycle_left", "retina", "rocket")
AUGMENT = ["--config.data.augment_flip=True", "--config.data.augment_crop=8"]


def make_folder(out: Path, per_photo: int, size: int = 64) -> int:
  """Writes the crops (if not there yet); returns how many there are."""
  import skimage
  from PIL import Image
  if out.exists():
    return len(list(out.rglob("*.png")))
  data_dir = Path(skimage.data_dir)
  count = 0
  for name in PHOTOS:
    image = Image.open(next(data_dir.glob(f"{name}.*"))).convert("RGB")
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    corners = [(t, l) for t in range(0, image.height - size + 1, size) for l in range(0, image.width - size + 1, size)]
    pick = np.random.default_rng(0).permutation(len(corners))[:per_photo]
    for i in sorted(pick):
      top, left = corners[i]
      image.crop((left, top, left + size, top + size)).save(folder / f"crop_{count:05d}.png")
      count += 1
  return count


def train(folder: Path, augment: bool, seed: int, args) -> dict:
  workdir = Path(args.runs) / f"{'aug' if augment else 'plain'}_seed{seed}"
  cmd = [sys.executable, str(REPO / "train.py"), "--config=folder64", f"--workdir={workdir}",
         f"--config.data.dir={folder}", "--config.data.labels=True", "--config.data.test_fraction=0.2",
         "--config.model.encoder=mlp", "--config.model.decoder=mlp", "--config.model.hidden=(512,)",
         "--config.model.latent_dim=32", "--config.model.likelihood=gaussian", "--config.batch_size=64",
         f"--config.num_train_steps={args.steps}", f"--config.seed={seed}", "--config.learning_rate=1e-3",
         "--config.evaluators=('loss','fid')", f"--config.quality.num_samples={args.num_samples}",
         f"--config.quality.judge_steps={args.judge_steps}", f"--config.eval_every={args.steps // 4}",
         "--config.sample_every=1000000", "--config.progress_bar=False", *(AUGMENT if augment else [])]
  t0 = time.time()
  if not (workdir / "metrics.jsonl").exists() or f'"step": {args.steps}' not in (workdir / "metrics.jsonl").read_text():
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
  tests = [r for r in rows if r["split"] == "test"]
  return {"augment": augment, "seed": seed, "workdir": str(workdir), "wall_s": time.time() - t0,
          "command": " ".join(cmd[1:]), "final": {k: tests[-1].get(k) for k in ("step", "neg_elbo", "bits_per_dim", "fid")},
          "curve": [{k: r.get(k) for k in ("step", "bits_per_dim", "fid")} for r in tests],
          "best_bits_per_dim": min(r["bits_per_dim"] for r in tests)}


def report(records: list[dict], num_images: int, args, wall_s: float) -> str:
  lines = ["# Augmentation on a small 64x64 folder", "",
           f"{num_images} crops of scikit-image's photos, 80/20 split; MLP VAE (512 hidden, 32 latents, Gaussian), "
           f"{args.steps} steps of batch 64; seeds {args.seeds}; wall {wall_s / 60:.0f} min.",
           f"Command: `python benchmarks/augmentation.py {' '.join(sys.argv[1:])}`", "",
           "| augmentation | final test bits/dim | best test bits/dim (any eval) | final judge-FID |", "|---|---|---|---|"]
  for augment in (False, True):
    rs = [r for r in records if r["augment"] == augment]
    def ms(values):
      return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"
    lines.append(f"| {'flip + crop 8' if augment else 'none'} | {ms([r['final']['bits_per_dim'] for r in rs])} | "
                 f"{ms([r['best_bits_per_dim'] for r in rs])} | {ms([r['final']['fid'] for r in rs])} |")
  return "\n".join(lines) + "\n"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", default="benchmarks/results/augmentation")
  p.add_argument("--runs", default="runs/augmentation")
  p.add_argument("--steps", type=int, default=4000)
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--per_photo", type=int, default=50)
  p.add_argument("--num_samples", type=int, default=1000)
  p.add_argument("--judge_steps", type=int, default=300)
  args = p.parse_args()
  t0 = time.time()
  folder = Path(args.runs) / "photos64"
  num = make_folder(folder, args.per_photo)
  records = [train(folder, augment, int(seed), args) for seed in args.seeds.split(",") for augment in (False, True)]
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  wall = time.time() - t0
  (out / "results.json").write_text(json.dumps({"num_images": num, "args": vars(args), "runs": records,
                                                "wall_s": wall}, indent=2) + "\n")
  (out / "report.md").write_text(report(records, num, args, wall))
  print(report(records, num, args, wall))


if __name__ == "__main__":
  main()
