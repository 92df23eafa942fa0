"""Fail fast: config mistakes are reported before any data is read, and an unprepared TFDS dataset
that cannot be prepared here fails at once (no minutes of download retries)."""

import importlib.util
import time

import pytest

from conftest import tiny_config
from vae_jax import data, trainer
from vae_jax.errors import UserError


@pytest.mark.parametrize("override, name", [
    ({"loss": "elbow"}, "elbow"),
    ({"model.likelihood": "bernouli"}, "bernouli"),
    ({"model.name": "ladderr"}, "ladderr"),
    ({"model.encoder": "convv"}, "convv"),
    ({"evaluators": ("is_nl",)}, "is_nl"),
    ({"optimizer": "adamm"}, "adamm"),
    ({"lr_schedule": "cosin"}, "cosin"),
    ({"lr_schedule": "cosine", "lr_warmup_steps": 30}, r"lr_warmup_steps \(30\) must be below num_train_steps \(30\)"),
])
def test_config_mistakes_are_reported_before_the_data_is_read(override, name, tmp_path, monkeypatch):
  def no_data(*args, **kwargs):
    raise AssertionError("the data was read before the config was checked")
  monkeypatch.setattr(data, "load_datasets", no_data)
  with pytest.raises(UserError, match=name):
    trainer.train_and_evaluate(tiny_config(**override), tmp_path / "run")
  assert not (tmp_path / "run").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="with TensorFlow installed, TFDS may download and prepare")
def test_an_unprepared_tfds_dataset_fails_within_seconds(tmp_path):
  config = tiny_config(**{"data.name": "mnist", "data.dir": "", "data.tfds_data_dir": str(tmp_path / "tfds")})
  start = time.perf_counter()
  with pytest.raises(UserError, match="could not read a prepared mnist in .*TensorFlow.*--config.data.dir"):
    trainer.train_and_evaluate(config, tmp_path / "run")
  assert time.perf_counter() - start < 30
  assert not (tmp_path / "run").exists()
