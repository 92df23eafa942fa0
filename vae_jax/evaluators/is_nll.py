"""`is_nll`: the importance-sampled negative log-likelihood (Burda et al. 2016).

    -log p(x) ~= -log (1/k) sum_{i=1..k} p(x, z_i) / q(z_i | x),   z_i ~ q(z | x)

an upper bound on -log p(x) in expectation that tightens as k grows (k = 1 is
the single-sample ELBO). Every example once, with the same fixed input
transform (test binarisation) as the other evaluators. The k samples are
drawn in chunks of `is_nll_chunk` per jitted call, accumulated per example
with logaddexp, so memory stays bounded for any k; the encoder runs once per
batch, its output kept for all of the batch's chunks. Reports, in nats per image: `is_nll` (mean
over examples), `is_nll_stderr` (the standard error of that mean over examples),
`is_nll_bits_per_dim`, `is_nll_k`, and `is_nll_samples_per_s` (images x k per second of wall
time), `is_nll_num_examples`. With `is_nll_num_examples` > 0 in the config, only the first that
many test examples are used (cheap curves during training; e.g. k = 1000 on the first 2,000,
Burda et al.'s quick protocol).
"""

from __future__ import annotations

import functools
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from vae_jax import losses
from vae_jax.data.source import head
from vae_jax.evaluators.base import EvalSetup, indexed_batches, keys_for, masked_sums, num_dims


def _encode(params, batch, eval_key, *, model, axis_name=None):
  """`losses.posterior` of the batch: (x, encoder context, latent keys), shared by all its chunks."""
  return losses.posterior(params, batch, keys_for(batch, eval_key), model=model)


def _chunk(params, batch, encoded, start, acc_B, *, model, chunk: int, k: int, axis_name=None):
  """acc_B logaddexp logsumexp_s log w_s over samples s in [start, start + chunk) below k."""
  samples_S = start + jnp.arange(chunk)
  log_w_SB = losses.log_weights_given(params, batch, encoded, samples_S, model=model)
  log_w_SB = jnp.where((samples_S < k)[:, None], log_w_SB, -jnp.inf)
  return jnp.logaddexp(acc_B, jax.nn.logsumexp(log_w_SB, axis=0))


def _reduce(acc_B, mask_B, *, k: int, axis_name=None):
  nll_B = math.log(k) - acc_B
  return masked_sums({"nll": nll_B, "nll_sq": jnp.square(nll_B)}, mask_B, axis_name)


class IsNllEvaluator:
  def __init__(self, setup: EvalSetup):
    self.setup = setup
    self.k = int(setup.config.is_nll_k)
    self.chunk = min(int(setup.config.is_nll_chunk), self.k)
    backend = setup.backend
    self._encode = backend.compile(functools.partial(_encode, model=setup.model), per_example_out=True)
    self._chunk = backend.compile(functools.partial(_chunk, model=setup.model, chunk=self.chunk, k=self.k))
    self._reduce = backend.compile(functools.partial(_reduce, k=self.k))
    self._key = backend.replicate(setup.eval_key)

  def __call__(self, params, source, step: int) -> dict[str, float]:
    del step
    source = head(source, int(self.setup.config.is_nll_num_examples))
    backend, totals = self.setup.backend, None
    t0 = time.perf_counter()
    num_batches = -(-len(source) // self.setup.batch_size)
    bar = tqdm(total=num_batches * self.k, disable=None, unit="samples/example", unit_scale=True,
               desc=f"is_nll k={self.k}", file=sys.stderr, dynamic_ncols=True, leave=False)
    for batch in indexed_batches(source, self.setup.batch_size):
      d_batch = backend.shard_batch(batch)
      acc = backend.shard_batch({"a": np.full(len(batch["mask"]), -np.inf, np.float32)})["a"]
      encoded = self._encode(params, d_batch, self._key)
      for start in range(0, self.k, self.chunk):
        new_acc = self._chunk(params, d_batch, encoded, backend.replicate(jnp.int32(start)), acc)
        # At most two chunks in flight: dispatch is asynchronous, and with a slow model the loop
        # would queue a batch's k / chunk calls ahead of the device (the bar running ahead of them).
        jax.block_until_ready(acc)
        acc = new_acc
        bar.update(min(self.chunk, self.k - start))
      sums = self._reduce(acc, d_batch["mask"])
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = {k: float(v) for k, v in jax.device_get(backend.unreplicate(totals)).items()}
    bar.close()
    seconds = time.perf_counter() - t0
    n = totals["count"]
    mean = totals["nll"] / n
    var = max(totals["nll_sq"] / n - mean * mean, 0.0) * n / max(n - 1, 1)
    return {"is_nll": mean, "is_nll_stderr": math.sqrt(var / n), "is_nll_k": self.k,
            "is_nll_bits_per_dim": float(self.setup.model.likelihood.nats_to_bits_per_dim(mean, num_dims(source))),
            "is_nll_samples_per_s": n * self.k / seconds, "is_nll_num_examples": int(n)}
