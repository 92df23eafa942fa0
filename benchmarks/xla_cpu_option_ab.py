"""A/B of the XLA:CPU option behind `xla_cpu_loop_unrolling` (vae_jax/xla_cpu.py).

  python benchmarks/xla_cpu_option_ab.py --output benchmarks/results/cpu_xla_loop_unrolling_ab/ab.jsonl
      [--alternations 2] [--configs mnist_mlp,mnist_conv,mnist_ladder,mnist_ar,mnist_hvae]
      [--measurements gelu_kernel,is_nll_call_ms:mnist_hvae,step_ms:mnist_hvae]

Each measurement runs in a fresh process, once with `xla_cpu.OPTION` added to XLA_FLAGS ("on":
loop unrolling off, what `xla_cpu_loop_unrolling = False` asks for) and once without it ("off"), the
two alternating so that drift on a shared machine hits both alike. (The timing scripts take XLA
options from XLA_FLAGS alone; they do not apply a config's `xla_cpu_loop_unrolling`.)
Measurements: tanh-GELU on f32 arrays of the hierarchy's shapes (ns per element, fastest of 5
rounds); one `mnist_hvae` IS-NLL call (benchmarks/is_nll_call_time.py); one train step of each
config (benchmarks/step_time.py). Appends one JSON line per measurement and arm to --output
and prints a table of the fastest on/off ratio per measurement. Run it on a quiet CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_KERNEL = """
import json, time, jax, jax.numpy as jnp, flax.linen as nn
out = {}
for shape in [(500, 14, 14, 8), (500, 14, 14, 32), (500, 7, 7, 16), (784000,)]:
  x = jax.random.normal(jax.random.key(0), shape)
  f = jax.jit(nn.gelu); f(x).block_until_ready(); best = 1e9
  for _ in range(5):
    t = time.perf_counter()
    for _ in range(20):
      f(x).block_until_ready()
    best = min(best, (time.perf_counter() - t) / 20)
  out["x".join(map(str, shape))] = round(best / x.size * 1e9, 3)
print(json.dumps({"gelu_ns_per_element": out}))
"""


def _measurements(configs: list[str]) -> dict[str, list[str]]:
  steps = {f"step_ms:{c}": [sys.executable, "benchmarks/step_time.py", "--config", c, "--rounds", "3",
                            "--calls", "3" if c in ("mnist_conv", "mnist_ar", "mnist_hvae") else "10"]
           for c in configs}
  return {"gelu_kernel": [sys.executable, "-c", _KERNEL],
          "is_nll_call_ms:mnist_hvae": [sys.executable, "benchmarks/is_nll_call_time.py",
                                        "--config", "mnist_hvae", "--calls", "100"],
          **steps}


def _figure(name: str, result: dict) -> dict[str, float]:
  """The numbers compared: lower is faster for all of them."""
  if name == "gelu_kernel":
    return result["gelu_ns_per_element"]
  if name.startswith("is_nll_call_ms"):
    return {"min_ms": result["min_ms"], "median_ms": result["median_ms"]}
  return {k: v for k, v in result["ms_per_step"]["default"].items() if k in ("min", "median")}


def _run(cmd: list[str], arm: str) -> dict:
  from vae_jax import xla_cpu
  env = dict(os.environ)
  if "xla_backend_extra_options" in env.get("XLA_FLAGS", ""):
    raise SystemExit("error: XLA_FLAGS already sets xla_backend_extra_options; unset it for the A/B")
  if arm == "on":
    xla_cpu.add_option(env)
  out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=True).stdout
  start = out.index("{")  # step_time prints indented JSON, the others one line
  return json.loads(out[start:])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output", required=True)
  parser.add_argument("--alternations", type=int, default=2)
  parser.add_argument("--configs", default="mnist_mlp,mnist_conv,mnist_ladder,mnist_ar,mnist_hvae")
  parser.add_argument("--measurements", default="", help="comma-separated names to run (default: all)")
  args = parser.parse_args()
  sys.path.insert(0, str(REPO))
  from vae_jax import hardware
  device = hardware.describe()
  best: dict[tuple[str, str, str], float] = {}
  Path(args.output).parent.mkdir(parents=True, exist_ok=True)
  chosen = set(filter(None, args.measurements.split(",")))
  measurements = _measurements(args.configs.split(","))
  if chosen - set(measurements):
    raise SystemExit(f"error: unknown --measurements {', '.join(sorted(chosen - set(measurements)))}; "
                     f"choose from {', '.join(measurements)}")
  for name, cmd in measurements.items():
    if chosen and name not in chosen:
      continue
    for i in range(args.alternations):
      for arm in (("on", "off") if i % 2 == 0 else ("off", "on")):
        figures = _figure(name, _run(cmd, arm))
        with open(args.output, "a") as f:
          f.write(json.dumps({"measurement": name, "arm": arm, "alternation": i, **figures,
                              "device": device}) + "\n")
        for key, value in figures.items():
          best[name, key, arm] = min(value, best.get((name, key, arm), float("inf")))
  for (name, key, arm), value in sorted(best.items()):
    if arm == "on":
      off = best[name, key, "off"]
      print(f"{name:32s} {key:14s} off {off:9.3f}  on {value:9.3f}  off/on {off / value:5.2f}")


if __name__ == "__main__":
  main()
