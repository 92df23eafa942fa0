"""A class-conditional run end to end: labels reach the model in training and evaluation, and
sample.py draws a chosen class; mismatched class counts are one-line errors."""

import jax
import numpy as np
import pytest
from PIL import Image

from vae_jax import data, inference, losses, trainer
from vae_jax.data.source import gather_examples
from vae_jax.errors import UserError


def test_conditional_run_trains_evaluates_and_samples_by_class(tmp_path, tiny_config):
  """Shapes (3 classes): the evaluation differs when the labels are permuted (the model uses them),
  and prior samples of class c from the same seed differ across classes."""
  c = tiny_config(num_train_steps=60, **{"data.labels": True, "model.num_classes": 3})
  final = trainer.train_and_evaluate(c, tmp_path / "run")
  assert np.isfinite(final["neg_elbo"]) and final["num_examples"] == 150
  run = inference.load_trained(tmp_path / "run")
  test = data.load_datasets(run.config.data).test
  x, y = gather_examples(test, np.arange(100))
  keys = jax.random.split(jax.random.key(0), 100)
  right = losses.elbo_terms(run.params, {"image": x, "label": y}, keys, model=run.model)["neg_elbo"]
  wrong = losses.elbo_terms(run.params, {"image": x, "label": (y + 1) % 3}, keys, model=run.model)["neg_elbo"]
  assert float(np.mean(wrong)) > float(np.mean(right))  # the true label explains the image better
  out = [np.asarray(Image.open(inference.write_prior_samples(
      run, tmp_path / f"c{k}.png", num=4, seed=0, temperature=1.0, label=k))) for k in range(3)]
  assert not np.array_equal(out[0], out[1]) and not np.array_equal(out[1], out[2])


@pytest.mark.parametrize("overrides, match", [
    ({"model.num_classes": 3}, "set --config.data.labels=True"),
    ({"model.num_classes": 4, "data.labels": True}, "has 3 classes"),
])
def test_class_count_mismatch_is_one_line(tmp_path, tiny_config, overrides, match):
  with pytest.raises(UserError, match=match):
    trainer.train_and_evaluate(tiny_config(**overrides), tmp_path / "run")
  assert not (tmp_path / "run").exists()  # refused before the workdir is touched


def test_the_cifar10_conditional_config_trains_on_tfds_labels_and_samples_a_class(tmp_path):
  """configs/cifar10_cvae.py (shrunk) on TFDS mock records, 8 training images in batches of 8, so
  every step sees all of them: under Adam a row of the learned p(z | y) moves iff its class occurs,
  so exactly the classes of the TFDS labels (some of the ten, not all) have moved rows; and a
  class's prior samples differ from another's drawn with the same seed."""
  tfds = pytest.importorskip("tensorflow_datasets")
  from configs import cifar10_cvae
  c = cifar10_cvae.get_config()
  c.model.channels, c.model.latent_dim = (8,), 4
  c.num_train_steps, c.batch_size, c.eval_batch_size = 4, 8, 8
  c.log_every = c.eval_every = c.sample_every = c.checkpoint_every = 4
  c.progress_bar, c.num_grid_images = False, 4
  c.data.num_test_examples = 8
  with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
    final = trainer.train_and_evaluate(c, tmp_path / "run")
    run = inference.load_trained(tmp_path / "run")
    train = data.load_datasets(run.config.data).train
    _, y_train = gather_examples(train, np.arange(len(train)))
  assert np.isfinite(final["neg_elbo"]) and len(train) == 8
  present = set(y_train.tolist())
  assert 0 < len(present) < 10  # both sides of the check below are non-empty
  prior_KZ = np.asarray(run.params["prior_by_class"])  # zeros at initialisation
  moved = {k for k in range(10) if np.any(prior_KZ[k] != 0)}
  assert moved == present
  grids = [np.asarray(inference.prior_sample_grid(run, num=2, seed=0, temperature=1.0, label=k)) for k in (3, 5)]
  assert not np.array_equal(*grids)
