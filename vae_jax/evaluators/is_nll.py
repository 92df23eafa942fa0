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
  """The batch's count, sum of -log p(x) and sum of squares about the batch mean (over devices)."""
  nll_B = math.log(k) - acc_B
  sums = masked_sums({"nll": nll_B}, mask_B, axis_name)
  mean = sums["nll"] / jnp.maximum(sums["count"], 1.0)
  return dict(sums, m2=masked_sums({"m2": jnp.square(nll_B - mean)}, mask_B, axis_name)["m2"])


def mean_and_stderr(batches: list[dict]) -> tuple[float, float, int]:
  """Mean, its standard error and the count from per-batch (count, sum, m2 about the batch mean), in float64:

      mean = sum_b sum_b / N,   M2 = sum_b [m2_b + n_b (mean_b - mean)^2]   (Chan et al. 1979)
      stderr = sqrt(M2 / (N - 1) / N)

  Sums of squares about zero, in float32, lose the variance to cancellation when the mean is
  large against the spread (thousands of nats for colour images)."""
  n_b = np.array([b["count"] for b in batches], np.float64)
  sum_b = np.array([b["nll"] for b in batches], np.float64)
  m2_b = np.array([b["m2"] for b in batches], np.float64)
  n = n_b.sum()
  mean = sum_b.sum() / n
  mean_b = sum_b / np.maximum(n_b, 1.0)
  m2 = np.sum(m2_b + n_b * np.square(mean_b - mean))
  return float(mean), float(math.sqrt(m2 / max(n - 1, 1) / n)), int(n)


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
    backend, batches = self.setup.backend, []
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
      batches.append(self._reduce(acc, d_batch["mask"]))
    batches = jax.device_get(backend.unreplicate(batches))
    bar.close()
    seconds = time.perf_counter() - t0
    mean, stderr, n = mean_and_stderr(batches)
    return {"is_nll": mean, "is_nll_stderr": stderr, "is_nll_k": self.k,
            "is_nll_bits_per_dim": float(self.setup.model.likelihood.nats_to_bits_per_dim(mean, num_dims(source))),
            "is_nll_samples_per_s": n * self.k / seconds, "is_nll_num_examples": int(n)}
