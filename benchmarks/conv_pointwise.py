"""1x1 convolutions as a matmul (`vae_jax.conv.Conv`) against flax's nn.Conv on this machine.

  python benchmarks/conv_pointwise.py [--repeats 5]

Times, jitted and warm: each 1x1 shape of `mnist_hvae` (forward, and the kernel
gradient) both ways; then the whole `mnist_hvae` model (with latent groups at 28x28 too,
`blocks_per_res` (2, 3, 4), as when this was measured) with every `Conv` swapped back
to nn.Conv and as shipped: the IS-NLL forward pass (log w for 500 images, one sample)
and an ELBO gradient on a batch of 128, with random parameters (speed does not depend
on training). The outputs of the two models agree to float32 rounding (checked here).
Writes benchmarks/results/<device>_conv_pointwise.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _seconds(fn, *args, repeats: int) -> float:
  import jax
  jax.block_until_ready(fn(*args))
  t0 = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / repeats


def _layers(repeats: int) -> list[dict]:
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  from vae_jax.conv import Conv
  rows = []
  for batch, size, cin, cout in [(500, 28, 32, 8), (500, 28, 64, 16), (500, 28, 8, 40), (128, 28, 32, 8)]:
    x = jax.random.normal(jax.random.key(0), (batch, size, size, cin))
    row = {"shape": [batch, size, size, cin, cout]}
    for name, cls in (("flax_conv", nn.Conv), ("matmul", Conv)):
      layer = cls(cout, (1, 1))
      params = layer.init(jax.random.key(1), x)
      fwd = jax.jit(layer.apply)
      grad = jax.jit(jax.grad(lambda p, x: jnp.sum(jnp.square(layer.apply(p, x)))))
      row[f"{name}_forward_ms"] = 1e3 * _seconds(fwd, params, x, repeats=repeats)
      row[f"{name}_gradient_ms"] = 1e3 * _seconds(grad, params, x, repeats=repeats)
    rows.append(row)
  return rows


def _model(conv_cls, repeats: int) -> dict:
  """`_time_model` of mnist_hvae built (and run: flax builds modules at apply) with `conv_cls`."""
  import jax
  from configs import mnist_hvae
  from vae_jax import model as model_lib
  from vae_jax.models import hvae
  shipped, hvae.Conv = hvae.Conv, conv_cls  # the layer class the model's modules are built from
  try:
    config = mnist_hvae.get_config()
    config.model.blocks_per_res = (2, 3, 4)
    model = model_lib.make_model(config, (28, 28, 1))
    params = model_lib.init(model, jax.random.key(0), (28, 28, 1))
    return _time_model(model, config, params, repeats)
  finally:
    hvae.Conv = shipped


def _time_model(model, config, params, repeats: int) -> dict:
  import functools
  import jax
  import jax.numpy as jnp
  import numpy as np
  from vae_jax import losses
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
  images = np.random.default_rng(0).integers(0, 256, (500, 28, 28, 1), dtype=np.uint8)
  batch, keys_B = {"image": jnp.asarray(images)}, jax.random.split(jax.random.key(2), 500)
  log_w = jax.jit(lambda p, b, k: losses.log_weights(p, b, k, jnp.arange(1), model=model)[1])
  loss = functools.partial(losses.elbo_loss, step=0, model=model, config=config)
  grad = jax.jit(jax.grad(lambda p, b, k: loss(p, b, k)[0]))
  small = {"image": batch["image"][:128]}
  fwd_s = _seconds(log_w, params, batch, keys_B, repeats=repeats)
  grad_s = _seconds(grad, params, small, keys_B[:128], repeats=repeats)
  return {"is_nll_samples_per_s": 500 / fwd_s, "train_images_per_s": 128 / grad_s,
          "log_w_sum": float(jnp.sum(log_w(params, batch, keys_B)))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (>= 1)")
  args = parser.parse_args()
  if args.repeats < 1:
    parser.error(f"--repeats must be at least 1, got {args.repeats}")
  import flax.linen as nn
  import jax
  from vae_jax.conv import Conv
  device = jax.devices()[0].platform
  flax_model, ours = _model(nn.Conv, args.repeats), _model(Conv, args.repeats)
  if abs(flax_model["log_w_sum"] - ours["log_w_sum"]) > 1e-5 * abs(ours["log_w_sum"]):
    sys.exit(f"error: the two models disagree: {flax_model['log_w_sum']} vs {ours['log_w_sum']}")
  result = {"device": str(jax.devices()[0].device_kind), "jax": jax.__version__, "repeats": args.repeats,
            "layers": _layers(args.repeats), "mnist_hvae_flax_conv": flax_model, "mnist_hvae_matmul": ours}
  out = REPO / "benchmarks" / "results" / f"{device}_conv_pointwise.json"
  out.write_text(json.dumps(result, indent=1) + "\n")
  print(json.dumps(result, indent=1))
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
