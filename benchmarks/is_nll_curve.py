"""IS-NLL against training wall time, from runs trained with the is_nll evaluator on.

  python train.py --config configs/mnist_ladder.py --config.data.dir=../shared/data/mnist \\
      --workdir runs/ladder_curve --config.evaluators='("loss","is_nll")' --config.is_nll_k=1000 \\
      --config.is_nll_num_examples=2000 --config.eval_every=8000
  python benchmarks/is_nll_curve.py runs/ladder_curve [more runs ...]

Prints one markdown table per run: step, epochs, training seconds (`train_s`: training steps only,
no evaluation), test -ELBO (or the loss's main figure) and IS-NLL with its standard error.
`train_s` counts one process's training; a run that was interrupted and resumed is summed over
its processes (a new process shows as `train_s` falling), so steps redone after a resume count
twice: the figure is the training time spent, never less.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def curve(workdir: Path) -> list[dict]:
  """The test rows with IS-NLL, each with `train_s` summed over the processes of the run so far."""
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
  out, offset, last = [], 0.0, 0.0
  for r in rows:
    if "train_s" not in r:
      continue
    if r["train_s"] < last:  # a new process (resume): its clock starts again
      offset += last
    last = r["train_s"]
    if r.get("split") == "test" and "is_nll" in r:
      out.append({**r, "train_s": offset + r["train_s"]})
  return out


def main(argv: list[str]) -> None:
  if not argv:
    raise SystemExit(__doc__)
  for arg in argv:
    workdir = Path(arg)
    config = json.loads((workdir / "config.json").read_text())
    per_epoch = config["batch_size"] / 60_000 if config["data"]["name"] in ("mnist", "fashion_mnist") else None
    print(f"\n{workdir} ({config['model']['name']}, loss {config['loss']}, k = {config['is_nll_k']}, "
          f"first {config['is_nll_num_examples'] or 'all'} test images)\n")
    print("| step | epochs | train s | test -ELBO | IS-NLL |")
    print("| --- | --- | --- | --- | --- |")
    for r in curve(workdir):
      epochs = f"{r['step'] * per_epoch:.0f}" if per_epoch else ""
      elbo = f"{r['neg_elbo']:.2f}" if "neg_elbo" in r else ""
      print(f"| {r['step']} | {epochs} | {r.get('train_s', float('nan')):.0f} | {elbo} | "
            f"{r['is_nll']:.2f} ± {r['is_nll_stderr']:.2f} |")


if __name__ == "__main__":
  main(sys.argv[1:])
