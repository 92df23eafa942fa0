"""Time of one jitted train step (no input pipeline), for a config and variants of it.

  python benchmarks/step_time.py --config mnist_mlp
  python benchmarks/step_time.py --config mnist_mlp --variant no_binarize=data.binarize=False \\
      --variant grad_norm=log_grad_norm=True --variant sgd="optimizer='sgd'"

Each variant is the config with overrides (KEY=VALUE, Python literals). All
variants are compiled first; then rounds alternate between them, so drift on a
shared machine hits them alike. Prints one JSON object: per variant, the min and
median ms per step over the rounds. The step is `train_step.train_steps` (a scan
of `steps_per_call` steps) under `jax.jit`, on one fixed batch of random pixels,
with the state donated, as the trainer runs it.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from vae_jax import losses  # noqa: E402
from vae_jax import model as model_lib  # noqa: E402
from vae_jax import train_step as step_lib  # noqa: E402
from compare import apply_override  # noqa: E402


def compiled_step(config, image_shape):
  """(compiled train_steps, its initial state, a batch of steps_per_call random uint8 images)."""
  model = model_lib.make_model(config, image_shape)
  params = model_lib.init(model, jax.random.key(0), image_shape)
  optimizer = step_lib.make_optimizer(config)
  state = step_lib.init_state(params, optimizer, config)  # with its EMA and skip state, as the trainer
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (config.steps_per_call, config.batch_size, *image_shape), np.uint8)
  batch = {"image": jnp.asarray(images)}
  fn = jax.jit(functools.partial(step_lib.train_steps, loss_fn=losses.get_loss_fn(config),
                                 model=model, config=config, optimizer=optimizer),
               donate_argnums=(0,))
  return fn.lower(state, batch, jax.random.key(1)).compile(), state, batch


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", default="mnist_mlp")
  ap.add_argument("--variant", action="append", default=[],
                  help="NAME=KEY=VALUE[,KEY=VALUE...]: a variant with these overrides")
  ap.add_argument("--rounds", type=int, default=10)
  ap.add_argument("--calls", type=int, default=20, help="calls timed per round")
  args = ap.parse_args()

  base = importlib.import_module(f"configs.{args.config}").get_config()
  image_shape = (base.data.image_size, base.data.image_size, base.data.channels)
  variants = {"default": []}
  for spec in args.variant:
    name, overrides = spec.split("=", 1)
    variants[name] = overrides.split(",")
  runs = {}
  for name, overrides in variants.items():
    config = base.copy_and_resolve_references()
    for item in overrides:
      apply_override(config, item)
    runs[name] = list(compiled_step(config, image_shape)) + [config.steps_per_call, []]
  key = jax.random.key(1)
  for _ in range(args.rounds):
    for run in runs.values():
      fn, state, batch, k, times = run
      state, _ = fn(state, batch, key)  # one untimed call: the previous round's buffers settle
      jax.block_until_ready(state)
      t0 = time.perf_counter()
      for _ in range(args.calls):
        state, _ = fn(state, batch, key)
      jax.block_until_ready(state)
      times.append((time.perf_counter() - t0) / (args.calls * k) * 1e3)
      run[1] = state
  out = {"config": args.config, "jax_version": jax.__version__,
         "device": str(jax.devices()[0].device_kind), "rounds": args.rounds,
         "ms_per_step": {name: {"min": round(min(r[4]), 3), "median": round(float(np.median(r[4])), 3),
                                "overrides": variants[name]} for name, r in runs.items()}}
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
