"""Time of one jitted IS-NLL call (B images x 1 importance sample) of a config's model, in ms.

  python benchmarks/is_nll_call_time.py --config mnist_hvae [--batch_size 100] [--calls 150]
      [--repo DIR]

The call is `losses.log_weights_given` after `losses.posterior` (the encoder runs once, outside
the timed calls), as `is_nll` runs it with `is_nll_chunk = 1`. Parameters are freshly initialised
and perturbed (the zero-initialised branches would make the hierarchy trivial); speed does not
depend on their values. `--repo` imports vae_jax and configs from another checkout (e.g. a
`git worktree` of an earlier commit), for an A/B of two versions on the same machine: alternate
the two a few times on a quiet CPU. Prints the median and minimum, and the sum of the log
weights, which two versions of the same model must agree on to float rounding.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="mnist_hvae")
  parser.add_argument("--batch_size", type=int, default=100)
  parser.add_argument("--calls", type=int, default=150)
  parser.add_argument("--repo", default=str(REPO), help="checkout whose vae_jax and configs to time")
  args = parser.parse_args()
  sys.path.insert(0, str(Path(args.repo).resolve()))

  import jax
  import jax.numpy as jnp
  import numpy as np
  from vae_jax import hardware, losses
  from vae_jax import model as model_lib

  config = importlib.import_module(f"configs.{args.config}").get_config()
  shape = (config.data.image_size, config.data.image_size, config.data.channels)
  model = model_lib.make_model(config, shape)
  leaves, tree = jax.tree.flatten(model_lib.init(model, jax.random.key(0), shape))
  params = jax.tree.unflatten(tree, [a + 0.05 * jax.random.normal(jax.random.key(i), a.shape)
                                     for i, a in enumerate(leaves)])
  image = np.random.default_rng(0).integers(0, 256, (args.batch_size, *shape))
  batch = {"image": jnp.asarray(image, jnp.uint8)}
  keys_B = jax.random.split(jax.random.key(1), args.batch_size)
  encoded = jax.jit(lambda p, b, k: losses.posterior(p, b, k, model=model))(params, batch, keys_B)
  call = jax.jit(lambda p, b, e, s: losses.log_weights_given(p, b, e, s, model=model))
  log_w = call(params, batch, encoded, jnp.zeros((1,), jnp.uint32)).block_until_ready()  # compile
  times = []
  for s in range(args.calls):
    t0 = time.perf_counter()
    call(params, batch, encoded, jnp.full((1,), s, jnp.uint32)).block_until_ready()
    times.append(time.perf_counter() - t0)
  print(json.dumps({"repo": str(Path(args.repo).resolve()), "config": args.config,
                    "batch_size": args.batch_size, "calls": args.calls,
                    "median_ms": round(1e3 * statistics.median(times), 2),
                    "min_ms": round(1e3 * min(times), 2), "sum_log_w_sample_0": float(log_w.sum()),
                    "device": hardware.describe()}))


if __name__ == "__main__":
  main()
