"""IS-NLL evaluation speed (images x k per second) against the matmul floor on the same machine.

  python benchmarks/is_nll_speed.py --config mnist_mlp [--k 500] [--num_examples 1000] [--chunk 10]

The floor is the time of the decoder's dense layers alone for the same number of latent samples
(jitted, same batch x chunk shapes): what IS-NLL would cost if nothing but the decoder's matrix
multiplies ran. The model is freshly initialised: speed does not depend on training. Writes JSON to
benchmarks/results/<device>_<config>_is_nll_speed.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _floor_seconds(params, n_samples: int, rows: int, repeats: int = 5) -> float:
  """Seconds per latent row through the decoder's Dense layers, `rows` rows per call."""
  import jax
  import jax.numpy as jnp
  dense = [params["decoder"][k] for k in sorted(params["decoder"])]

  @jax.jit
  def decode(z):
    h = z
    for i, layer in enumerate(dense):
      h = h @ layer["kernel"] + layer["bias"]
      if i < len(dense) - 1:
        h = jax.nn.relu(h)
    return jnp.sum(h)
  z = jnp.ones((rows, dense[0]["kernel"].shape[0]), jnp.float32)
  decode(z).block_until_ready()
  calls = max(1, n_samples // rows)
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = [decode(z) for _ in range(calls)]
    jax.block_until_ready(out)
    best = min(best, time.perf_counter() - t0)
  return best / (calls * rows)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="mnist_mlp")
  parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
  parser.add_argument("--k", type=int, default=500)
  parser.add_argument("--num_examples", type=int, default=1000)
  parser.add_argument("--chunk", type=int, default=None, help="samples per call (default: the config's)")
  parser.add_argument("--batch_size", type=int, default=500)
  args = parser.parse_args()

  import jax
  from vae_jax import data, evaluators, hardware, losses, parallel
  from vae_jax import model as model_lib

  config = importlib.import_module(f"configs.{args.config}").get_config()
  config.data.dir = args.data_dir
  config.data.num_test_examples = args.num_examples
  args.chunk = args.chunk or config.is_nll_chunk
  config.is_nll_k, config.is_nll_chunk, config.eval_batch_size = args.k, args.chunk, args.batch_size
  test = data.load_datasets(config.data).test
  shape = (config.data.image_size, config.data.image_size, config.data.channels)
  model = model_lib.make_model(config, shape)
  params = model_lib.init(model, jax.random.key(0), shape)
  backend = parallel.make_backend(config.parallel, config.num_devices)
  setup = evaluators.EvalSetup(model=model, config=config, loss_fn=losses.get_loss_fn(config),
                               backend=backend, eval_key=jax.random.key(1), batch_size=args.batch_size)
  evaluator = evaluators.make_evaluators(["is_nll"], setup)["is_nll"]
  d_params = backend.replicate(params)
  evaluator(d_params, data.source.head(test, args.batch_size), 0)  # compile
  result = evaluator(d_params, test, 0)
  rate = result["is_nll_samples_per_s"]
  record = {"config": args.config, "k": args.k, "num_examples": len(test), "chunk": args.chunk,
            "batch_size": args.batch_size, "is_nll_samples_per_s": rate,
            "device": hardware.describe()}
  if "decoder" in params and all("kernel" in v for v in params["decoder"].values()):
    per_sample_s = _floor_seconds(params, len(test) * args.k, args.batch_size * args.chunk)
    record.update(matmul_floor_samples_per_s=1.0 / per_sample_s, fraction_of_floor=rate * per_sample_s)
  print(json.dumps(record, indent=2))
  out = REPO / "benchmarks" / "results" / f"{jax.devices()[0].platform}_{args.config}_is_nll_speed.json"
  out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
  main()
