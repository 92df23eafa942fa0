"""Keep the best of many samples: draw `candidates` images from the prior, score each, keep the top n.

Scores (`keep_by`), higher is better:
  judge    the judge's probability of its predicted class (of the asked class, for a conditional
           model): confident, recognisable images
  elbo     the model's own ELBO of the sample (a VAE only): log p(x) >= ELBO(x), at x = the quantised
           image in [0, 1], one posterior draw; images the model itself finds likely
  realism  the realism score of Kynkäänniemi et al. 2019 against the test split's features
           (`sample_metrics.realism`): closeness to the real-image manifold

Keeping the best raises precision and lowers FID against the data only while
the kept set stays diverse: it costs recall (benchmarks/keep_best.py measures both).
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from vae_jax import losses
from vae_jax import model as model_lib
from vae_jax import sample_metrics
from vae_jax.errors import UserError
from vae_jax.evaluators.sample_quality import generate_images, real_features
from vae_jax.train_step import example_keys

KEEP_BY = ("judge", "elbo", "realism")


@functools.partial(jax.jit, static_argnames=("model",))
def _elbo(params, images_BHWC: jax.Array, keys_B: jax.Array, y_B, *, model) -> jax.Array:
  """ELBO(x) [B] of uint8 images at x = image / 255 (no binarisation: the sample itself is scored)."""
  x = images_BHWC.astype(np.float32) / 255.0
  context = model_lib.encode(params, x, model=model, y=y_B)
  inference = model_lib.infer(params, context, keys_B, model=model, y=y_B)
  return -losses.terms_from_inference(x, inference)["neg_elbo"]


def elbo_scores(run, images_NHWC: np.ndarray, labels_N: np.ndarray | None, *, seed: int,
                batch: int = 500) -> np.ndarray:
  if not run.model.has_encoder:
    raise UserError(f"--keep_by elbo needs a VAE; {run.config.model.name} has no encoder "
                    "(use --keep_by judge or realism)")
  key = jax.random.fold_in(jax.random.key(seed), 2)
  out = []
  for start in range(0, len(images_NHWC), batch):
    chunk = images_NHWC[start:start + batch]
    keys = example_keys(key, np.arange(start, start + len(chunk)))
    y = None if labels_N is None else labels_N[start:start + batch]
    out.append(np.asarray(_elbo(run.params, chunk, keys, y, model=run.model)))
  return np.concatenate(out)


def judge_scores(network, images_NHWC: np.ndarray, labels_N: np.ndarray | None) -> np.ndarray:
  """softmax probability of the predicted class, or of the asked class when labels are given."""
  _, logits = network.outputs(images_NHWC)
  if logits is None:
    raise UserError("--keep_by judge needs the judge's logits; use --features judge")
  log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
  chosen = np.argmax(logits, axis=1) if labels_N is None else np.asarray(labels_N)
  return np.exp(log_p[np.arange(len(log_p)), chosen])


def scores(by: str, run, images_NHWC, labels_N, *, network, test_source, seed: int) -> np.ndarray:
  """Each candidate's score under `by` (see the module doc)."""
  if by == "judge":
    return judge_scores(network, images_NHWC, labels_N)
  if by == "elbo":
    return elbo_scores(run, images_NHWC, labels_N, seed=seed)
  if by == "realism":
    real, _ = real_features(network, test_source)
    fake, _ = network.outputs(images_NHWC)
    return sample_metrics.realism(real, fake)
  raise UserError(f"--keep_by {by!r}: valid: {', '.join(KEEP_BY)}")


def draw_candidates(run, num: int, *, seed: int, temperature: float = 1.0,
                    mode: str = "mean", batch: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
  """`num` prior samples as uint8 images (and their asked labels, for a conditional model)."""
  return generate_images(run.params, jax.random.key(seed), num, model=run.model, batch_size=min(batch, num),
                         mode=mode, temperature=temperature, num_classes=getattr(run.model, "num_classes", 0))


def keep_top(images_NHWC: np.ndarray, scores_N: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
  """(the n highest-scoring images, best first, and their indices among the candidates)."""
  order = np.argsort(-np.asarray(scores_N), kind="stable")[:n]
  return images_NHWC[order], order
