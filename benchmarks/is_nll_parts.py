"""A long evaluation (IS-NLL, k = 5000, the whole test split) in parts that survive interruptions.

  python benchmarks/is_nll_parts.py --workdir DIR --k 5000 --part_size 100 --parts_dir PARTS \
      [--metrics is_nll,elbo] [--batch_size 100] [--max_s SECONDS] --output ALL.json

Splits the test split into parts [0, 100), [100, 200), ... and evaluates, in order, each part
whose record PARTS/START_END.json does not exist yet (`vae_jax.evaluate.evaluate_run` with
`examples`, so every example draws what a whole evaluation draws), writing each record as it
completes. A stopped or killed process loses at most the part under way; run the same command
again, on this machine or another holding the same parameters, and it goes on. With `--max_s`
it starts no new part once that many seconds have passed. When every part exists it merges them
(`vae_jax.eval_merge`: the parameters' digests must agree) into --output. Exit status 0 when
merged, 3 when parts remain, 2 with an `error:` line on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vae_jax.errors import UserError, run_cli  # noqa: E402

PARTS_LEFT = 3


def part_ranges(total: int, part_size: int) -> list[tuple[int, int]]:
  """[start, stop) of each part: `part_size` examples each, the last one shorter."""
  return [(a, min(a + part_size, total)) for a in range(0, total, part_size)]


def part_path(parts_dir: Path, part: tuple[int, int]) -> Path:
  return parts_dir / f"{part[0]}_{part[1]}.json"


def split_size(workdir: Path) -> int:
  from vae_jax import data, inference
  return len(data.load_datasets(inference.load_trained(workdir).config.data).test)


def run_parts(args: argparse.Namespace) -> int:
  """Evaluates the missing parts (within --max_s); merges when none is missing. Returns the exit code."""
  from vae_jax import eval_merge, evaluate
  parts = part_ranges(split_size(Path(args.workdir)), args.part_size)  # a UserError if not a run
  parts_dir = Path(args.parts_dir)
  parts_dir.mkdir(parents=True, exist_ok=True)
  t0 = time.monotonic()
  for part in parts:
    path = part_path(parts_dir, part)
    if path.exists():
      continue
    record = evaluate.evaluate_run(args.workdir, args.metrics.split(","), k=args.k, batch_size=args.batch_size,
                                   examples=part)
    evaluate.write_json(path, record)
    print(f"part {part[0]}:{part[1]}: is_nll {record['is_nll']:.3f} ({record['wall_s']:.0f} s)", flush=True)
    if args.max_s and time.monotonic() - t0 > args.max_s:
      break
  missing = [p for p in parts if not part_path(parts_dir, p).exists()]
  if missing:
    print(f"{len(parts) - len(missing)} of {len(parts)} parts done; run again to go on", flush=True)
    return PARTS_LEFT
  paths = [str(part_path(parts_dir, p)) for p in parts]
  merged = eval_merge.merge([json.loads(Path(p).read_text()) for p in paths], paths)
  evaluate.write_json(Path(args.output), merged)
  print(f"merged {len(parts)} parts: is_nll {merged['is_nll']:.3f} +- {merged['is_nll_stderr']:.3f}; "
        f"wrote {args.output}", flush=True)
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--k", type=int, required=True)
  parser.add_argument("--part_size", type=int, default=100)
  parser.add_argument("--parts_dir", required=True)
  parser.add_argument("--metrics", default="is_nll,elbo")
  parser.add_argument("--batch_size", type=int, default=None)
  parser.add_argument("--max_s", type=float, default=0.0, help="start no new part after this many seconds (0: no limit)")
  parser.add_argument("--output", required=True)
  args = parser.parse_args(argv)
  from absl import logging
  logging.set_verbosity(logging.ERROR)  # orbax's warnings, e.g. on a read-only copy of a run
  if args.k < 1 or args.part_size < 1:
    raise UserError("--k and --part_size must be positive")
  if not Path(args.workdir).is_dir():
    raise UserError(f"--workdir {args.workdir} does not exist")
  if not Path(args.output).parent.is_dir():
    raise UserError(f"--output {args.output}: folder {Path(args.output).parent} does not exist")
  from vae_jax import inference, xla_cpu
  xla_cpu.apply(inference.load_config(Path(args.workdir)))  # the run's choice, before JAX starts
  return run_parts(args)


if __name__ == "__main__":
  run_cli(lambda: sys.exit(main()))
