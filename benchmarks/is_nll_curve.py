"""IS-NLL against training wall time, from runs trained with the is_nll evaluator on.

  python train.py --config configs/mnist_ladder.py --config.data.dir=../shared/data/mnist \\
      --workdir runs/ladder_curve --config.evaluators='("loss","is_nll")' --config.is_nll_k=1000 \\
      --config.is_nll_num_examples=2000 --config.eval_every=8000
  python benchmarks/is_nll_curve.py runs/ladder_curve [more runs ...]

Prints one markdown table per run: step, epochs, training seconds (`train_s`: training steps only,
no evaluation), test -ELBO (or the loss's main figure) and IS-NLL with its standard error.
`train_s` is the run's training clock: checkpoints record it, so it goes on across resumes (see
`curve` for runs from before that).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vae_jax import metrics_log  # noqa: E402  (reads JSON only: no JAX)


def curve(workdir: Path) -> list[dict]:
  """The test rows with IS-NLL, each with the run's training seconds so far.

  A resume from the checkpoint at step s restarts the clock at s's reading, so `train_s` falls
  only by the time spent past that checkpoint (redone steps count once). Runs from before
  checkpoints kept the clock restarted it at 0 in each process: a fall below half the reading
  at the resume's step is such a restart, and the clock so far is added on (redone steps then
  count twice: the figure is never less than the time spent).
  """
  rows = metrics_log.read(workdir / "metrics.jsonl")
  out, offset, seen = [], 0.0, []  # seen: (step, train_s) of the rows read so far
  for r in rows:
    if "train_s" not in r:
      continue
    if seen and r["train_s"] < seen[-1][1]:
      before = [t for step, t in seen if step < r["step"]]
      if not before or r["train_s"] < 0.5 * before[-1]:  # a process whose clock began at 0
        offset += seen[-1][1]
    seen.append((r["step"], r["train_s"]))
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
