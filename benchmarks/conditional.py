"""Conditional generation and style transfer, measured with the dataset's judge.

  python benchmarks/conditional.py --runs mnist=runs/apps/mnist_cvae,fashion_mnist=runs/apps/fashion_mnist_cvae \\
      --out benchmarks/results/conditional

For each trained conditional run (configs/mnist_cvae.py, configs/fashion_mnist_cvae.py):

Conditional generation: --num_samples prior samples at temperature 1 (and at --temperatures),
sample i of class i mod C (the likelihood's mean, as shown), judged by the dataset's classifier: `cond_accuracy` (the judge gives the asked
class), judge-FID against the whole test split, and per-class FID (class c's samples against the
test images of class c).

Style transfer (vae_jax/transfer.py): the first --num_content test images A, each transferred into
every other class B: `transfer_accuracy` (the judge gives B's class; per target class, and the
confusion counts [target, judged], in results.json), and how well the transfer keeps
A's per-image code: z' = the posterior mean of q(z | transfer, B) against z_A, as the Pearson
correlation per latent unit over all pairs, averaged over the active units (variance of z_A above
0.01); `code_correlation_shuffled` pairs each z' with another image's z_A (the chance level).
`generative_classifier_accuracy`: how often the model's own guess of a test image's class
(argmax_y L_k(x | y), used for unlabelled --content/--style files) is right.

Writes OUT/results.json, OUT/report.md, OUT/<name>_classes.png (column j: class j) and
OUT/<name>_transfer.png (column 0: a test image; column 1 + g: its transfer into class g).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vae_jax import images, inference, sample_metrics, transfer  # noqa: E402
from vae_jax.data import load_datasets  # noqa: E402
from vae_jax.data.source import gather_examples  # noqa: E402
from vae_jax.evaluators.sample_quality import generate_images, real_features  # noqa: E402
from vae_jax.features.extractors import FEATURES  # noqa: E402


def generation(run, judge, test, test_y, args, temperature: float = 1.0) -> dict:
  c = inference.num_classes(run)
  fake, asked = generate_images(run.params, jax.random.key(args.seed), args.num_samples, model=run.model,
                                batch_size=500, num_classes=c, temperature=temperature)
  fake_f, logits = judge.outputs(fake)
  real_f, _ = real_features(judge, test)
  per_class = [sample_metrics.fid(real_f[test_y == k], fake_f[asked == k]) for k in range(c)]
  return {"cond_accuracy": float(np.mean(np.argmax(logits, 1) == asked)),
          "cond_accuracy_per_class": [float(np.mean(np.argmax(logits, 1)[asked == k] == k)) for k in range(c)],
          "fid": sample_metrics.fid(real_f, fake_f), "fid_per_class": per_class,
          "num_samples": int(args.num_samples)}


def pearson_per_unit(a_NZ: np.ndarray, b_NZ: np.ndarray) -> np.ndarray:
  a, b = a_NZ - a_NZ.mean(0), b_NZ - b_NZ.mean(0)
  return np.sum(a * b, 0) / np.sqrt(np.sum(a * a, 0) * np.sum(b * b, 0))


def style_transfer(run, judge, x, y, args) -> dict:
  c = inference.num_classes(run)
  z_a = np.asarray(transfer.codes(run.params, x, y, model=run.model)[0]).reshape(len(x), -1)
  active = np.var(z_a, 0) > 0.01
  correct, total, z_pairs, z_new = 0, 0, [], []
  confusion_CC = np.zeros((c, c), np.int64)  # [target class, judged class]
  for shift in range(1, c):
    target = ((y + shift) % c).astype(np.int32)
    out = images.to_uint8(np.asarray(transfer.transfer(run.params, x, y, target, model=run.model)))
    _, logits = judge.outputs(out)
    judged = np.argmax(logits, 1)
    correct += int(np.sum(judged == target))
    np.add.at(confusion_CC, (target, judged), 1)
    total += len(x)
    z_new.append(np.asarray(transfer.codes(run.params, out, target, model=run.model)[0]).reshape(len(x), -1))
    z_pairs.append(z_a)
  z_pairs, z_new = np.concatenate(z_pairs), np.concatenate(z_new)
  shuffled = z_pairs[np.random.default_rng(0).permutation(len(z_pairs))]
  guessed = transfer.infer_labels(run, x[:args.num_classify], k=args.classify_k)
  return {"transfer_accuracy": correct / total, "num_transfers": total,
          "transfer_accuracy_per_class": (np.diag(confusion_CC) / confusion_CC.sum(1)).tolist(),
          "transfer_confusion": confusion_CC.tolist(),
          "code_correlation": float(np.mean(pearson_per_unit(z_pairs, z_new)[active])),
          "code_correlation_all_units": float(np.mean(pearson_per_unit(z_pairs, z_new))),
          "code_correlation_shuffled": float(np.mean(pearson_per_unit(shuffled, z_new)[active])),
          "active_units": int(active.sum()),
          "generative_classifier_accuracy": float(np.mean(guessed == y[:args.num_classify])),
          "generative_classifier_k": args.classify_k, "generative_classifier_examples": int(args.num_classify)}


def pictures(run, x, y, name: str, out: Path) -> None:
  c = inference.num_classes(run)
  samples, _ = generate_images(run.params, jax.random.key(1), 8 * c, model=run.model, batch_size=8 * c,
                               num_classes=c)
  images.save_image(images.grid_image(samples / 255.0, ncol=c), out / f"{name}_classes.png")
  images.save_image(transfer.analogy_grid(run, x[:10], y[:10]), out / f"{name}_transfer.png")


def measure(name: str, workdir: str, args, out: Path) -> dict:
  t0 = time.time()
  run = inference.load_trained(workdir)
  transfer.check_model(run)
  test = load_datasets(run.config.data).test
  x, y = gather_examples(test, np.arange(len(test)))
  judge = FEATURES.get("judge")(run.config.data, None)
  result = {"workdir": workdir, "step": run.step, **generation(run, judge, test, y, args)}
  result["by_temperature"] = {t: {k: v for k, v in generation(run, judge, test, y, args, float(t)).items()
                                  if k in ("cond_accuracy", "fid")} for t in args.temperatures.split(",")}
  result.update(style_transfer(run, judge, x[:args.num_content], y[:args.num_content], args))
  result["judge_test_accuracy"] = judge.info().get("judge_test_accuracy")
  pictures(run, x, y, name, out)
  result["wall_s"] = time.time() - t0
  return result


def report(results: dict, argv: list[str]) -> str:
  lines = ["# Conditional generation and style transfer (judged)", "",
           f"Command: `python benchmarks/conditional.py {' '.join(argv)}`", "",
           "| dataset | step | cond. accuracy | FID | per-class FID (min–max) | transfer accuracy | code r "
           "(shuffled) | model's own classifier | judge test acc. |", "|---|---|---|---|---|---|---|---|---|"]
  for name, r in results.items():
    lines.append(f"| {name} | {r['step']} | {r['cond_accuracy']:.4f} | {r['fid']:.1f} | "
                 f"{min(r['fid_per_class']):.1f}–{max(r['fid_per_class']):.1f} | {r['transfer_accuracy']:.4f} | "
                 f"{r['code_correlation']:.3f} ({r['code_correlation_shuffled']:.3f}) | "
                 f"{r['generative_classifier_accuracy']:.4f} | {r['judge_test_accuracy']:.4f} |")
  for name, r in results.items():
    lines += ["", f"{name} at lower prior temperatures (cond. accuracy / FID): " + ", ".join(
        f"T = {t}: {v['cond_accuracy']:.4f} / {v['fid']:.1f}" for t, v in r["by_temperature"].items())]
  for name, r in results.items():
    lines += ["", f"{name} per class (cond. accuracy / FID): " + ", ".join(
        f"{k}: {a:.3f} / {f:.1f}" for k, (a, f) in enumerate(zip(r["cond_accuracy_per_class"], r["fid_per_class"])))]
  for name, r in results.items():
    if "transfer_accuracy_per_class" in r:
      lines += ["", f"{name} transfers into each class (judged B's class): " + ", ".join(
          f"{k}: {a:.3f}" for k, a in enumerate(r["transfer_accuracy_per_class"]))]
  return "\n".join(lines) + "\n"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--runs", required=True, help="name=workdir,... of conditional runs")
  p.add_argument("--out", default="benchmarks/results/conditional")
  p.add_argument("--num_samples", type=int, default=10000)
  p.add_argument("--num_content", type=int, default=1000)
  p.add_argument("--num_classify", type=int, default=1000)
  p.add_argument("--classify_k", type=int, default=10)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--temperatures", default="0.9,0.8,0.7", help="also: cond. accuracy and FID at these prior "
                 "temperatures (z ~ N(0, T^2 I))")
  args = p.parse_args()
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  results = {}
  for item in args.runs.split(","):
    name, workdir = item.split("=", 1)
    results[name] = measure(name, workdir, args, out)
    print(json.dumps({name: {k: v for k, v in results[name].items() if not isinstance(v, list)}}), flush=True)
  (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  (out / "report.md").write_text(report(results, sys.argv[1:]))
  print(report(results, sys.argv[1:]))


if __name__ == "__main__":
  main()
