"""Sample quality: `fid`, `kid`, `precision_recall`, `class_coverage` (`vae_jax/sample_metrics.py`).

These evaluator names share one instance (`takes_names`): the model draws
`quality.num_samples` images from its prior once per evaluation, the feature
network (`quality.features`: judge or inception) embeds them, and each named
metric compares them with the features of the whole test split, computed once
and cached on disk beside the feature network (`real_features`). Generated
images are the likelihood's mean (`quality.mode="mean"`, as displayed) or a
draw from p(x|z) (`"sample"`), at `quality.temperature`, quantised to uint8
like the real ones. The draws come from the run's evaluation key and each
sample's index, so every evaluation of a run uses the same latent draws.

In a multi-host run only process 0 computes them (no collectives are
involved; the others return nothing), since only it writes metrics.

A conditional model (model.num_classes > 0) draws sample i with label
i mod C (balanced classes), and `class_coverage` then also reports
`cond_accuracy`: how often the judge gives the label that was asked for.

Reports: `fid`; `kid`, `kid_std`; `precision`, `recall`; `class_entropy`,
`class_coverage` (and `cond_accuracy`); `quality_num_samples`,
`quality_num_real`, and the feature network's info (e.g.
`judge_test_accuracy`).
"""

from __future__ import annotations

import functools
import hashlib
import os

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import model as model_lib
from vae_jax import sample_metrics
from vae_jax.data.source import gather
from vae_jax.evaluators.base import EvalSetup
from vae_jax.features.extractors import FEATURES
from vae_jax.features.dataset_judge import cache_root
from vae_jax.train_step import example_keys

NAMES = ("fid", "kid", "precision_recall", "class_coverage")


@functools.partial(jax.jit, static_argnames=("model", "mode"))
def generate_batch(params, key: jax.Array, index_B: jax.Array, y_B: jax.Array | None,
                   temperature: float, *, model, mode: str) -> jax.Array:
  """uint8 images [B, H, W, C] of samples index_B (their keys: fold_in(key, index))."""
  z_key, x_key = jax.random.split(key)
  out = model_lib.generate(params, example_keys(z_key, index_B), model=model, y=y_B, temperature=temperature)
  x = out.p_x.mean if mode == "mean" else out.p_x.sample(example_keys(x_key, index_B))
  return jnp.round(jnp.clip(x, 0.0, 1.0) * 255).astype(jnp.uint8)


def generate_images(params, key: jax.Array, num: int, *, model, batch_size: int, mode: str = "mean",
                    temperature: float = 1.0, num_classes: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
  """(uint8 images [num, H, W, C], their labels [num] or None): samples 0..num-1, in fixed-size batches."""
  images = []
  for start in range(0, num, batch_size):
    index = np.arange(start, start + batch_size, dtype=np.int32)
    y = jnp.asarray(index % num_classes) if num_classes > 0 else None
    images.append(np.asarray(generate_batch(params, key, jnp.asarray(index), y, temperature,
                                            model=model, mode=mode)))
  labels = np.arange(num) % num_classes if num_classes > 0 else None
  return np.concatenate(images)[:num], labels


def _source_digest(source) -> str:
  """A short digest of a split's images, so cached real features follow the data, not a name."""
  h = hashlib.sha256(str(len(source)).encode())
  for i in np.linspace(0, len(source) - 1, num=min(len(source), 64)).astype(int):
    h.update(np.ascontiguousarray(source[int(i)]).tobytes())
  return h.hexdigest()[:12]


def real_features(network, source, *, batch: int = 1000) -> tuple[np.ndarray, np.ndarray | None]:
  """(features, logits or None) of every image of `source`, cached in $VAE_JAX_CACHE/real_features."""
  digest = hashlib.sha256(f"{network.key}/{_source_digest(source)}".encode()).hexdigest()[:16]
  path = cache_root() / "real_features" / f"{digest}.npz"
  if path.is_file():
    cached = np.load(path)
    return cached["features"], (cached["logits"] if "logits" in cached else None)
  feats, logits = [], []
  for start in range(0, len(source), batch):
    f, l = network.outputs(gather(source, np.arange(start, min(start + batch, len(source)))))
    feats.append(f)
    logits.append(l)
  features = np.concatenate(feats)
  logits = None if logits[0] is None else np.concatenate(logits)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # per process (multi-process runs)
  np.savez(tmp, features=features, **({} if logits is None else {"logits": logits}))
  tmp.replace(path)
  return features, logits


def quality_metrics(names, real_ND, fake_MD, fake_logits, asked_labels, *, num_classes: int,
                    config) -> dict[str, float]:
  """The named metrics between real and generated features (see the module doc)."""
  out: dict[str, float] = {}
  if "fid" in names:
    out["fid"] = sample_metrics.fid(real_ND, fake_MD)
  if "kid" in names:
    out["kid"], out["kid_std"] = sample_metrics.kid(real_ND, fake_MD, num_subsets=config.kid_subsets,
                                                    subset_size=config.kid_subset_size)
  if "precision_recall" in names:
    out["precision"], out["recall"] = sample_metrics.precision_recall(real_ND, fake_MD, k=config.pr_k)
  if "class_coverage" in names and fake_logits is not None:
    predicted = np.argmax(fake_logits, axis=1)
    out.update(sample_metrics.class_histogram(predicted, num_classes))
    if asked_labels is not None:
      out["cond_accuracy"] = float(np.mean(predicted == asked_labels))
  return out


class SampleQualityEvaluator:
  """See the module doc; built once per run, for all the sample-quality names it is given."""

  takes_names = True

  def __init__(self, setup: EvalSetup, names=NAMES):
    self.names = tuple(names)
    self.setup = setup
    self.quality = setup.config.quality
    self.network = None  # built on first use: the judge may need training

  def _network(self):
    if self.network is None:
      self.network = FEATURES.get(self.quality.features)(
          self.setup.config.data, self.quality.judge_dir or None, judge_steps=int(self.quality.judge_steps))
    return self.network

  def __call__(self, params, source, step: int) -> dict[str, float]:
    del step
    if jax.process_index() != 0:  # process 0 alone writes metrics, and the figures are the same on all
      return {}
    network = self._network()
    real, _ = real_features(network, source)
    params = self.setup.backend.unreplicate(params)
    num_classes = int(self.setup.config.model.get("num_classes", 0))
    images, labels = generate_images(
        params, jax.random.fold_in(self.setup.eval_key, 1), int(self.quality.num_samples),
        model=self.setup.model, batch_size=self.setup.batch_size, mode=self.quality.mode,
        temperature=float(self.quality.temperature), num_classes=num_classes)
    fake, logits = network.outputs(images)
    out = quality_metrics(self.names, real, fake, logits, labels,
                          num_classes=getattr(network, "num_classes", 0), config=self.quality)
    info = {k: v for k, v in network.info().items() if isinstance(v, (int, float))}
    return {**out, **info, "quality_num_samples": len(images), "quality_num_real": len(real)}
