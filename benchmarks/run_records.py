"""The test-split rows of trained runs, kept as a results file.

  python benchmarks/run_records.py --output FILE.json NAME=DIR [NAME=DIR ...]

Runs live in ignored folders; the figures a README table takes from their `metrics.jsonl` (test
loss, −ELBO and other bounds, KL, IS-NLL, training seconds at each evaluation) are copied here
with what identifies the run: its data, model, loss, β, seed and steps from `DIR/config.json`.
Reads files only: no JAX.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vae_jax import metrics_log  # noqa: E402  (reads JSON only: no JAX)

_CONFIG_KEYS = ("data.name", "model.name", "model.hidden", "model.latent_dim", "model.num_classes",
                "model.class_prior", "loss", "beta", "seed", "num_train_steps", "batch_size")
_ROW_KEYS = ("step", "loss", "recon", "kl", "bits_per_dim", "num_examples", "train_s")
_ROW_PREFIXES = ("neg_", "is_nll", "kl_g")  # neg_elbo, neg_iwae, ...; IS-NLL figures; KL per group


def _kept(key: str) -> bool:
  return key in _ROW_KEYS or key.startswith(_ROW_PREFIXES)


def _get(config: dict, dotted: str):
  for part in dotted.split("."):
    if not isinstance(config, dict) or part not in config:
      return None
    config = config[part]
  return config


def run_record(workdir: Path) -> dict:
  """{workdir, config: the identifying keys, test: [rows]} of one run directory."""
  config = json.loads((workdir / "config.json").read_text())
  rows = metrics_log.read(workdir / "metrics.jsonl")
  test = [{k: v for k, v in r.items() if _kept(k)} for r in rows if r.get("split") == "test"]
  return {"workdir": str(workdir), "config": {k: _get(config, k) for k in _CONFIG_KEYS}, "test": test}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", required=True)
  parser.add_argument("runs", nargs="+", metavar="NAME=DIR")
  args = parser.parse_args()
  records = {}
  for item in args.runs:
    name, sep, directory = item.partition("=")
    workdir = Path(directory)
    if not sep or not name:
      parser.error(f"expected NAME=DIR, got {item!r}")
    if not (workdir / "metrics.jsonl").is_file() or not (workdir / "config.json").is_file():
      parser.error(f"{directory} has no metrics.jsonl and config.json: not a run directory")
    records[name] = run_record(workdir)
  Path(args.output).write_text(json.dumps(records, indent=2) + "\n")
  for name, record in records.items():
    last = record["test"][-1] if record["test"] else {}
    print(f"{name}: {len(record['test'])} test rows, last step {last.get('step')}, "
          f"neg_elbo {last.get('neg_elbo', float('nan')):.2f}")


if __name__ == "__main__":
  main()
