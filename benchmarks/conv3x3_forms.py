"""3x3 convolutions three ways on this machine: XLA's convolution, shifted matmuls, patches + matmul.

  python benchmarks/conv3x3_forms.py [--repeats 20]

`mnist_hvae`'s IS-NLL time goes mostly to the 3x3 convolutions of its residual
blocks' bottlenecks (8 and 16 channels at 14x14 and 7x7, 100 rows per call).
For each such shape, forward only, jitted and warm:

  conv     lax.conv_general_dilated (what nn.Conv runs)
  shifts   the nine shifted copies of the zero-padded input side by side, one matmul
           with the kernel as a [9C, O] matrix
  patches  lax.conv_general_dilated_patches, then one matmul

Each form must match the convolution to float32 rounding (checked). Writes
benchmarks/results/<device>_conv3x3_forms.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES = [(100, 14, 8), (100, 14, 16), (100, 7, 8), (100, 7, 16)]  # rows, size, channels in = out
DIMS = ("NHWC", "HWIO", "NHWC")


def _ms(fn, *args, repeats: int) -> float:
  import jax
  jax.block_until_ready(fn(*args))
  t0 = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return 1e3 * (time.perf_counter() - t0) / repeats


def conv(x, k):
  import jax
  return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DIMS)


def shifts(x, k):
  """sum_{i,j} x_pad[:, i:i+H, j:j+W] K[i, j], as one matmul over the concatenated shifts."""
  import jax.numpy as jnp
  H, W = x.shape[1:3]
  x_pad = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate([x_pad[:, i:i + H, j:j + W] for i in range(3) for j in range(3)], axis=-1)
  return cols @ k.reshape(-1, k.shape[-1])


def patches(x, k):
  """The patches' channels are ordered (c, i, j): the kernel is transposed to match."""
  import jax
  import jax.numpy as jnp
  p = jax.lax.conv_general_dilated_patches(x, (3, 3), (1, 1), "SAME", dimension_numbers=DIMS)
  return p @ jnp.transpose(k, (2, 0, 1, 3)).reshape(-1, k.shape[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement (>= 1)")
  args = parser.parse_args()
  if args.repeats < 1:
    parser.error(f"--repeats must be at least 1, got {args.repeats}")
  import jax
  import jax.numpy as jnp
  rows = []
  for rows_, size, c in SHAPES:
    x = jax.random.normal(jax.random.key(0), (rows_, size, size, c))
    k = jax.random.normal(jax.random.key(1), (3, 3, c, c))
    ref = conv(x, k)
    row = {"shape": [rows_, size, size, c, c]}
    for name, fn in (("conv", conv), ("shifts", shifts), ("patches", patches)):
      fn = jax.jit(fn)
      err = float(jnp.max(jnp.abs(fn(x, k) - ref)))
      if err > 1e-4 * float(jnp.max(jnp.abs(ref))):
        sys.exit(f"error: {name} disagrees with the convolution by {err}")
      row[f"{name}_ms"] = _ms(fn, x, k, repeats=args.repeats)
    rows.append(row)
    print(row, flush=True)
  result = {"device": str(jax.devices()[0].device_kind), "jax": jax.__version__, "repeats": args.repeats,
            "rows": rows}
  out = REPO / "benchmarks" / "results" / f"{jax.devices()[0].platform}_conv3x3_forms.json"
  out.write_text(json.dumps(result, indent=1) + "\n")
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
