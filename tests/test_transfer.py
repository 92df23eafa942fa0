"""Style transfer with the two-code (conditional) model: vae_jax/transfer.py and sample.py --transfer.

The transfer must use exactly the two codes it claims (A's posterior mean, B's group), the model's
own classifier must pick the class whose importance-weighted bound (checked against numpy) is
largest, and the command must work end to end on a labelled folder of "styles". How well the
classifier and the transfers do on MNIST is measured in benchmarks/conditional.py.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy import stats

from conftest import tiny_config
from test_cli import TINY, assert_user_error, run
from vae_jax import inference, transfer
from vae_jax import model as model_lib
from vae_jax.data import load_datasets
from vae_jax.data.source import gather_examples


def _cvae(seed=0):
  config = tiny_config(**{"data.labels": True, "model.num_classes": 3})
  model = model_lib.make_model(config, (28, 28, 1))
  params = model_lib.init(model, jax.random.key(seed), (28, 28, 1))
  # A prior that differs by class, so a wrong group shows.
  params = dict(params, prior_by_class=jax.random.normal(jax.random.key(seed + 1), params["prior_by_class"].shape))
  return model, params


def test_transfer_decodes_a_posterior_mean_in_the_other_group():
  model, params = _cvae()
  x = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28, 1), dtype=np.uint8)
  y_a = np.array([0, 1, 2, 0, 1], np.int32)
  y_b = np.array([2, 2, 0, 1, 0], np.int32)
  got = transfer.transfer(params, x, y_a, y_b, model=model)
  q = model_lib.encode(params, jnp.asarray(x / 255.0, jnp.float32), model=model, y=y_a)
  np.testing.assert_allclose(transfer.codes(params, x, y_a, model=model)[0], q.mean, atol=1e-6)
  want = np.clip(model_lib.decode(params, q.mean, model=model, y=y_b).mean, 0, 1)
  np.testing.assert_allclose(got, want, atol=1e-6)
  # Each code matters: another group, or the code read in another group, changes the picture.
  assert np.abs(transfer.transfer(params, x, y_a, (y_b + 1) % 3, model=model) - got).max() > 1e-3
  assert np.abs(transfer.transfer(params, x, (y_a + 1) % 3, y_b, model=model) - got).max() > 1e-3


def test_class_bounds_are_the_importance_weighted_bound_per_class():
  """L_k(x | y=c) against numpy: Bernoulli log p(x|z) at x = image / 255, q(z|x,c) and the class prior."""
  model, params = _cvae(seed=2)
  x = np.random.default_rng(1).integers(0, 256, size=(4, 28, 28, 1), dtype=np.uint8)
  k = 6

  class Run:
    pass
  run_ = Run()
  run_.params, run_.model = params, model
  got = transfer.class_log_likelihoods(run_, x, k=k, seed=3)
  keys = jax.random.split(jax.random.key(3), 4)
  xf = x.reshape(4, -1) / 255.0
  prior = np.asarray(params["prior_by_class"], np.float64)
  for c in range(3):
    y = np.full(4, c, np.int32)
    q = model_lib.encode(params, jnp.asarray(x / 255.0, jnp.float32), model=model, y=y)
    mu, sd = np.asarray(q.mean, np.float64), np.exp(0.5 * np.asarray(q.logvar, np.float64))
    p_mu, p_sd = prior[c, :4], np.exp(0.5 * prior[c, 4:])
    log_w = []
    for s in range(k):
      inference = model_lib.infer(params, q, keys, model=model, y=y, sample=s)
      z = np.asarray(inference.groups[0].z, np.float64)
      logits = np.asarray(inference.p_x.logits, np.float64).reshape(4, -1)
      log_px = np.sum(xf * logits - np.logaddexp(0.0, logits), 1)
      log_w.append(log_px + stats.norm.logpdf(z, p_mu, p_sd).sum(1) - stats.norm.logpdf(z, mu, sd).sum(1))
    want = np.logaddexp.reduce(np.stack(log_w), axis=0) - np.log(k)
    np.testing.assert_allclose(got[:, c], want, rtol=1e-5)
  np.testing.assert_array_equal(transfer.infer_labels(run_, x, k=k, seed=3), np.argmax(got, 1))


@pytest.fixture(scope="module")
def shapes_cvae(tmp_path_factory) -> Path:
  wd = tmp_path_factory.mktemp("cvae") / "run"
  run("train.py", f"--workdir={wd}", *TINY, "--config.num_train_steps=300", "--config.data.labels=True",
      "--config.model.num_classes=3")
  return wd


def _write(path: Path, array: np.ndarray) -> str:
  Image.fromarray(array).save(path)
  return str(path)


def test_transfer_command_with_files_and_as_a_grid(shapes_cvae, tmp_path):
  trained = inference.load_trained(shapes_cvae)
  x, y = gather_examples(load_datasets(trained.config.data).test, np.arange(2))
  a, b = _write(tmp_path / "a.png", x[0, ..., 0]), _write(tmp_path / "b.png", x[1, ..., 0])
  proc = run("sample.py", f"--workdir={shapes_cvae}", "--transfer", f"--content={a}", f"--style={b}",
             "--style_label=2", f"--output={tmp_path / 't.png'}")
  assert "style" in proc.stdout and "group 2" in proc.stdout
  got = np.asarray(Image.open(tmp_path / "t.png"))
  want = transfer.transfer(trained.params, x[:1], transfer.infer_labels(trained, x[:1]), np.array([2], np.int32),
                           model=trained.model)
  np.testing.assert_array_equal(got, np.clip(np.rint(np.asarray(want)[0, ..., 0] * 255), 0, 255))
  run("sample.py", f"--workdir={shapes_cvae}", "--transfer", "--transfer_rows=4", f"--output={tmp_path / 'g.png'}")
  assert Image.open(tmp_path / "g.png").size == (4 * 29 + 1, 4 * 29 + 1)  # the image + 3 groups, 4 rows


@pytest.mark.parametrize("args, fragment", [
    (["--transfer", "--content=a.png"], "needs --style B.png or --style_label N"),
    (["--transfer", "--style=a.png"], "needs --content A.png"),
    (["--content=a.png", "--style=a.png"], "--content and --style go with --transfer"),
    (["--transfer", "--content=a.png", "--style=a.png", "--style_label=3"], "--style_label 3 is not a class"),
    (["--transfer", "--content=missing.png", "--style=a.png"], "--content missing.png not found"),
])
def test_transfer_bad_input_is_one_error_and_no_file(shapes_cvae, tmp_path, args, fragment):
  _write(tmp_path / "a.png", np.zeros((28, 28), np.uint8))
  args = [a.replace("=a.png", f"={tmp_path / 'a.png'}") for a in args]
  proc = run("sample.py", f"--workdir={shapes_cvae}", *args, f"--output={tmp_path / 'o.png'}", check=False)
  assert_user_error(proc, fragment)
  assert not (tmp_path / "o.png").exists()


def test_transfer_on_a_folder_of_styles_end_to_end(tmp_path):
  """Two 'styles' (warm and cool tints) as subfolders: train, then move a warm picture into the cool style."""
  rng = np.random.default_rng(0)
  for style, tint in (("cool", (0.2, 0.4, 1.0)), ("warm", (1.0, 0.5, 0.1))):
    (tmp_path / "art" / style).mkdir(parents=True)
    for i in range(40):
      shape = np.zeros((16, 16), np.float32)
      r, c, s = rng.integers(0, 8), rng.integers(0, 8), rng.integers(4, 8)
      shape[r:r + s, c:c + s] = 1.0
      rgb = (255 * shape[..., None] * np.array(tint)).astype(np.uint8)
      Image.fromarray(rgb).save(tmp_path / "art" / style / f"{i}.png")
  wd = tmp_path / "run"
  run("train.py", f"--workdir={wd}", *TINY, "--config.num_train_steps=150", "--config.batch_size=16",
      "--config.data.name=folder", f"--config.data.dir={tmp_path / 'art'}", "--config.data.image_size=16",
      "--config.data.channels=3", "--config.data.labels=True", "--config.model.num_classes=2",
      "--config.data.test_fraction=0.1", "--config.model.likelihood=gaussian")
  content = tmp_path / "art" / "warm" / "0.png"
  proc = run("sample.py", f"--workdir={wd}", "--transfer", f"--content={content}", "--style_label=0",
             f"--output={tmp_path / 'out.png'}")
  out = np.asarray(Image.open(tmp_path / "out.png")).astype(float)
  assert out.shape == (16, 16, 3), proc.stdout
  lit = out.sum(-1) > out.sum(-1).mean()
  assert out[lit][:, 2].mean() > out[lit][:, 0].mean()  # the cool style: blue over red where the shape is


def test_the_standard_class_prior_is_n01_for_every_class():
  """class_prior="standard": no per-class parameters, KL to N(0, I) in closed form, and prior draws
  that do not depend on the class (only the decoder sees it)."""
  config = tiny_config(**{"data.labels": True, "model.num_classes": 3, "model.class_prior": "standard"})
  model = model_lib.make_model(config, (28, 28, 1))
  params = model_lib.init(model, jax.random.key(0), (28, 28, 1))
  assert "prior_by_class" not in params
  x = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28, 1), dtype=np.uint8)
  y = np.array([0, 1, 2, 1], np.int32)
  q = model_lib.encode(params, jnp.asarray(x / 255.0, jnp.float32), model=model, y=y)
  keys = jax.random.split(jax.random.key(1), 4)
  group = model_lib.infer(params, q, keys, model=model, y=y).groups[0]
  mu, logvar = np.asarray(q.mean, np.float64), np.asarray(q.logvar, np.float64)
  np.testing.assert_allclose(group.kl, 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, 1), rtol=1e-5)
  a = model_lib.generate(params, keys, model=model, y=np.zeros(4, np.int32))
  b = model_lib.generate(params, keys, model=model, y=np.full(4, 2, np.int32))
  np.testing.assert_array_equal(a.zs[0], b.zs[0])
  assert np.abs(np.asarray(a.p_x.mean) - np.asarray(b.p_x.mean)).max() > 1e-4
  with pytest.raises(Exception, match="model.class_prior='flat'"):
    model_lib.make_model(tiny_config(**{"model.num_classes": 3, "model.class_prior": "flat"}), (28, 28, 1))
