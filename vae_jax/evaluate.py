"""Evaluates a trained run on its test split with any registered evaluators:

  python -m vae_jax.evaluate --workdir DIR --metrics is_nll,elbo --k 5000 [--num_examples N]
      --output FILE.json

Restores the newest readable checkpoint's parameters (the EMA parameters when
the run kept them), uses every local device, and writes one JSON object with
`step`, `num_examples`, `k`, `params` ("raw" or "ema"), `metrics`, every
evaluator's figures (e.g. `is_nll`, `is_nll_stderr`, `neg_elbo`,
`bits_per_dim`), `wall_s` and `device`. The test binarisation and draws are
the run's own (its seed's evaluation key, each example's index), so figures
match the run's metrics.jsonl and each other.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from absl import flags, logging

from vae_jax import cli
from vae_jax.errors import UserError, run_cli

_WORKDIR = flags.DEFINE_string("workdir", None, "a run directory written by train.py")
_METRICS = flags.DEFINE_list("metrics", ["is_nll", "elbo"],
                             "evaluators to run, comma-separated: loss, elbo, is_nll, active_units "
                             "(or package.module:Class)")
_K = flags.DEFINE_integer("k", None, "is_nll: importance samples per example (default: the run's is_nll_k)",
                          lower_bound=1)
_CHUNK = flags.DEFINE_integer("chunk", None, "is_nll: samples per jitted call (memory bound)", lower_bound=1)
_NUM = flags.DEFINE_integer("num_examples", 0, "the first N test examples; 0 = all", lower_bound=0)
_BATCH = flags.DEFINE_integer("batch_size", None, "global evaluation batch (default: the run's)", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "write the results here as JSON")


def _check_output(path: str | None) -> Path | None:
  """Refuses an output that cannot be written, before any work."""
  if path is None:
    return None
  out = Path(path)
  if out.is_dir():
    raise UserError(f"--output {out} is a directory; name a file, e.g. {out / 'eval.json'}")
  if not out.parent.is_dir():
    raise UserError(f"--output {out}: folder {out.parent} does not exist; create it first")
  return out


def _write_json(path: Path, record: dict) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(record, indent=2) + "\n")
  os.replace(tmp, path)


def evaluate_run(workdir: str | Path, metrics: list[str], *, k: int | None = None, chunk: int | None = None,
                 num_examples: int = 0, batch_size: int | None = None) -> dict:
  """Runs `metrics` on the run in `workdir`; returns the JSON record."""
  import jax  # after flag parsing: slow to import
  from vae_jax import data, evaluators, inference, losses, parallel, trainer

  run = inference.load_trained(workdir)
  config = run.config
  if k is not None:
    config.is_nll_k = k
  if chunk is not None:
    config.is_nll_chunk = chunk
  if batch_size is not None:
    config.eval_batch_size = batch_size
  config.data.num_test_examples = num_examples
  config.is_nll_num_examples = 0  # --num_examples governs every evaluator here
  backend = parallel.make_backend(config.parallel, config.num_devices)
  trainer.check_divisible(config, backend)
  test = data.load_datasets(config.data).test
  setup = evaluators.EvalSetup(model=run.model, config=config, loss_fn=losses.get_loss_fn(config),
                               backend=backend, eval_key=trainer.Keys.from_seed(config.seed).eval,
                               batch_size=config.eval_batch_size)
  chosen = evaluators.make_evaluators(metrics, setup)
  t0 = time.perf_counter()
  results = evaluators.run_all(chosen, backend.replicate(run.params), test, run.step)
  return {"workdir": str(workdir), "step": run.step, "params": run.params_kind, "metrics": list(metrics),
          "k": int(config.is_nll_k), "num_examples": len(test), **results,
          "wall_s": time.perf_counter() - t0, "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}"}


def main() -> None:
  logging.set_verbosity(logging.ERROR)
  cli.parse_flags(sys.argv)
  if not _WORKDIR.value:
    raise UserError("--workdir is required: the run directory train.py wrote")
  if not _METRICS.value:
    raise UserError("--metrics is empty; name at least one, e.g. --metrics is_nll,elbo")
  output = _check_output(_OUTPUT.value)
  record = evaluate_run(_WORKDIR.value, _METRICS.value, k=_K.value, chunk=_CHUNK.value,
                        num_examples=_NUM.value, batch_size=_BATCH.value)
  from vae_jax import trainer
  print(f"step {record['step']} of {_WORKDIR.value} ({record['params']} params, "
        f"{record['num_examples']} test examples, k={record['k']}): {trainer.summary_line(record)}")
  if output is not None:
    _write_json(output, record)
    print(f"wrote {output}")


def main_interruptible() -> None:
  """Ctrl-C at any point: one line, exit 130; the output is only ever written complete, at the end."""
  try:
    main()
  except KeyboardInterrupt:
    print("\ninterrupted; nothing was written", file=sys.stderr, flush=True)
    raise SystemExit(130) from None


if __name__ == "__main__":
  run_cli(main_interruptible)
