"""Missing data: fixed masks (data/missing.py), losses on the observed pixels (MIWAE), imputation
(vae_jax/imputation.py) and `sample.py --inpaint`.

The masks are checked against their definitions (rate, one exact square, a pure function of the
example), the bound against an independent computation and against IWAE on complete data, and the
imputation against its formula computed from `losses.log_weights` and explicit softmax weights.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy import stats

from conftest import data_config, tiny_config
from test_cli import TINY, assert_user_error, run
from vae_jax import data, imputation, losses
from vae_jax import model as model_lib
from vae_jax.data import missing
from vae_jax.data.source import ArraySource, gather
from vae_jax.distributions import Bernoulli, Gaussian
from vae_jax.errors import UserError
from vae_jax.likelihoods.dlm import DiscretizedLogisticMixture


# --- masks -----------------------------------------------------------------------------------------

def test_mcar_masks_miss_pixels_at_the_rate_independently_of_the_batch():
  pattern = missing.MissingPattern("mcar", rate=0.3, seed=5)
  idx = np.arange(2000)
  obs = pattern.observed("train", idx, (28, 28))
  n = obs.size
  lo, hi = stats.binom.ppf([1e-6, 1 - 1e-6], n, 0.3) / n
  assert lo < 1 - obs.mean() < hi
  # Example i's mask is the same alone, in another batch, and in another order.
  alone = np.concatenate([pattern.observed("train", np.array([i]), (28, 28)) for i in (7, 1999, 0)])
  np.testing.assert_array_equal(alone, obs[[7, 1999, 0]])
  # ... and differs between examples, splits and seeds.
  assert (obs[0] != obs[1]).mean() > 0.2
  assert (pattern.observed("test", idx[:50], (28, 28)) != obs[:50]).mean() > 0.2
  other = missing.MissingPattern("mcar", rate=0.3, seed=6).observed("train", idx[:50], (28, 28))
  assert (other != obs[:50]).mean() > 0.2
  # Pixels within an image are independent: neighbours agree as often as chance says.
  same = (obs[:, :, 1:] == obs[:, :, :-1]).mean()
  assert abs(same - (0.3**2 + 0.7**2)) < 0.01


def test_block_masks_are_one_whole_square_placed_uniformly():
  pattern = missing.MissingPattern("block", block=5, seed=0)
  obs = pattern.observed("test", np.arange(3000), (12, 10))[..., 0]
  tops, lefts = [], []
  for m in obs:
    rows, cols = np.nonzero(~m)
    assert len(rows) == 25
    top, left = rows.min(), cols.min()
    assert rows.max() == top + 4 and cols.max() == left + 4  # 25 pixels in a 5x5 box: the whole square
    tops.append(top)
    lefts.append(left)
  # Every corner that fits (top 0..7, left 0..5) is used, about equally often.
  assert stats.chisquare(np.bincount(tops, minlength=8)).pvalue > 1e-4 and max(tops) == 7
  assert stats.chisquare(np.bincount(lefts, minlength=6)).pvalue > 1e-4 and max(lefts) == 5


def test_missing_source_zeroes_the_missing_pixels_and_batches_carry_the_masks():
  rng = np.random.default_rng(0)
  images = rng.integers(1, 256, size=(40, 6, 6, 1), dtype=np.uint8)
  parent = ArraySource(images, labels=np.arange(40) % 3)
  source = missing.MissingSource(parent, missing.MissingPattern("mcar", rate=0.5), "train")
  idx = np.array([3, 17, 39])
  obs = source.observed(idx)
  np.testing.assert_array_equal(gather(source, idx), np.where(obs, images[idx], 0))
  np.testing.assert_array_equal(source[17], np.where(obs[1], images[17], 0))
  batch = next(data.train_iterator(source, batch_size=8, seed=0))
  assert set(batch) == {"image", "label", "observed"}
  np.testing.assert_array_equal(batch["image"] > 0, batch["observed"])  # every parent pixel is > 0
  last = list(data.eval_batches(source, 16))[-1]  # 40 = 16 + 16 + 8: the last batch is padded
  np.testing.assert_array_equal(last["observed"][:8], source.observed(np.arange(32, 40)))
  assert not last["observed"][8:].any()


def test_load_datasets_applies_the_pattern_to_both_splits():
  ds = data.load_datasets(data_config(missing="block", missing_block=7, labels=True))
  batch = next(data.eval_batches(ds.test, 10))
  assert (~batch["observed"]).reshape(10, -1).sum(1).tolist() == [49] * 10
  assert np.all(batch["image"][~np.broadcast_to(batch["observed"], batch["image"].shape)] == 0)
  assert "label" in batch


@pytest.mark.parametrize("overrides, fragment", [
    ({"missing": "holes"}, "data.missing='holes'"),
    ({"missing": "mcar", "missing_rate": 1.0}, "data.missing_rate=1.0"),
    ({"missing": "block", "missing_block": 28}, "data.missing_block=28"),
])
def test_bad_missing_settings_are_one_clear_error(overrides, fragment):
  with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
    data.load_datasets(data_config(**overrides))


# --- likelihoods and bounds on the observed pixels ----------------------------------------------------

def _dists(rng):
  shape = (3, 4, 5, 3)
  k = 2
  return [Bernoulli(jnp.asarray(rng.normal(size=shape), jnp.float32)),
          Gaussian(jnp.asarray(rng.uniform(size=shape), jnp.float32), jnp.float32(-1.5)),
          DiscretizedLogisticMixture(jnp.asarray(rng.normal(size=(3, 4, 5, k)), jnp.float32),
                                     jnp.asarray(rng.uniform(-1, 1, size=(*shape, k)), jnp.float32),
                                     jnp.asarray(rng.uniform(-3, -1, size=(*shape, k)), jnp.float32),
                                     jnp.asarray(np.tanh(rng.normal(size=(3, 4, 5, 3, k))), jnp.float32))]


def test_observed_log_prob_splits_the_full_one_over_the_pixels():
  """log p(x) = log p(x_o) + log p(x_m) for any split, and an empty set of pixels scores 0."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.integers(0, 256, size=(3, 4, 5, 3)) / 255.0, jnp.float32)
  obs = jnp.asarray(rng.random((3, 4, 5, 1)) < 0.5)
  for dist in _dists(rng):
    full = dist.log_prob(x)
    parts = dist.log_prob(x, obs) + dist.log_prob(x, ~obs)
    np.testing.assert_allclose(parts, full, rtol=1e-5, err_msg=type(dist).__name__)
    np.testing.assert_array_equal(dist.log_prob(x, jnp.zeros_like(obs)), 0.0)
    # One observed pixel scores that pixel alone: compare with the pixel cut out as a 1x1 image.
    one = jnp.zeros_like(obs).at[:, 2, 3].set(True)
    pixel = jax.tree_util.tree_map(lambda a: a[:, 2:3, 3:4] if a.ndim >= 4 else a, dist)
    np.testing.assert_allclose(dist.log_prob(x, one), pixel.log_prob(x[:, 2:3, 3:4]), rtol=1e-5)


def _model_and_batch(likelihood="bernoulli", seed=0):
  config = tiny_config(**{"model.likelihood": likelihood, "data.image_size": 8})
  model = model_lib.make_model(config, (8, 8, 1))
  params = model_lib.init(model, jax.random.key(seed), (8, 8, 1))
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, size=(6, 8, 8, 1), dtype=np.uint8)
  obs = rng.random((6, 8, 8, 1)) < 0.6
  return config, model, params, image, obs


def test_miwae_equals_iwae_when_nothing_is_missing():
  config, model, params, image, _ = _model_and_batch()
  config.loss, config.iwae_k = "iwae", 3
  rng = jax.random.split(jax.random.key(3), 6)
  complete, _ = losses.get_loss_fn(config)(params, {"image": image}, rng, 0, model=model, config=config)
  config.loss = "miwae"
  observed_all = {"image": image, "observed": np.ones((6, 8, 8, 1), bool)}
  miwae, _ = losses.get_loss_fn(config)(params, observed_all, rng, 0, model=model, config=config)
  np.testing.assert_array_equal(miwae, complete)


def test_miwae_is_the_importance_weighted_bound_on_the_observed_pixels_only():
  """Independent computation: log w_s = sum_observed Bernoulli log-probs + log p(z_s) - log q(z_s | x_o)."""
  config, model, params, image, obs = _model_and_batch()
  config.loss, config.iwae_k = "miwae", 4
  rng = jax.random.split(jax.random.key(4), 6)
  batch = {"image": image, "observed": obs}
  loss, _ = losses.get_loss_fn(config)(params, batch, rng, 0, model=model, config=config)
  data_keys, latent_keys = losses.split_keys(rng)
  x = np.asarray(model_lib.model_input(image, data_keys, model=model)) * obs
  q = model_lib.encode(params, jnp.asarray(x, jnp.float32), model=model)
  log_w = []
  for s in range(4):
    inference = model_lib.infer(params, q, latent_keys, model=model, sample=s)
    logits = np.asarray(inference.p_x.logits, np.float64)
    per_pixel = x * logits - np.logaddexp(0.0, logits)
    z = np.asarray(inference.groups[0].z, np.float64)
    mu, logvar = np.asarray(q.mean, np.float64), np.asarray(q.logvar, np.float64)
    log_q = stats.norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(1)
    log_w.append((per_pixel * obs).reshape(6, -1).sum(1) + stats.norm.logpdf(z).sum(1) - log_q)
  bound = np.logaddexp.reduce(np.stack(log_w), axis=0) - np.log(4)
  np.testing.assert_allclose(loss, -bound.mean(), rtol=1e-5)
  # The missing pixels' values never matter.
  scrambled = {"image": np.where(obs, image, 255 - image), "observed": obs}
  again, _ = losses.get_loss_fn(config)(params, scrambled, rng, 0, model=model, config=config)
  np.testing.assert_allclose(again, loss, rtol=1e-6)


def test_a_likelihood_that_cannot_drop_pixels_is_refused():
  config, model, params, image, obs = _model_and_batch(likelihood="ar_bernoulli")
  with pytest.raises(UserError, match="cannot score only the observed pixels"):
    losses.elbo_terms(params, {"image": image, "observed": obs}, jax.random.split(jax.random.key(0), 6),
                      model=model)


# --- imputation ------------------------------------------------------------------------------------

def test_single_imputation_is_the_weighted_mean_of_the_draws_and_keeps_observed_pixels():
  _, model, params, image, obs = _model_and_batch(likelihood="gaussian", seed=2)
  keys = jax.random.split(jax.random.key(9), 6)
  k = 7
  out = imputation.impute(params, image, obs, keys, model=model, num_samples=k)
  # The same draws, scored by the loss code: log_weights uses the posterior's keys and sample indices.
  data_keys, _ = losses.split_keys(keys)
  x, log_w = losses.log_weights(params, {"image": image, "observed": obs}, data_keys, jnp.arange(k), model=model)
  _, context, latent_keys = losses.posterior(params, {"image": image, "observed": obs}, data_keys, model=model)
  means = np.stack([np.asarray(model_lib.infer(params, context, latent_keys, model=model, sample=s).p_x.mean)
                    for s in range(k)])
  w = np.asarray(jax.nn.softmax(np.asarray(log_w, np.float64), axis=0))
  expected = np.clip(np.einsum("kb,kbhwc->bhwc", w, means), 0, 1)
  expected = np.where(obs, image / 255.0, expected)
  np.testing.assert_allclose(out.single, expected, atol=1e-5)
  np.testing.assert_array_equal(np.rint(np.asarray(out.single) * 255)[np.broadcast_to(obs, image.shape)],
                                image[np.broadcast_to(obs, image.shape)])
  np.testing.assert_allclose(out.effective_sample_size, 1.0 / np.sum(w**2, 0), rtol=1e-4)


def test_resampled_imputations_pick_draws_in_proportion_to_their_weights():
  _, model, params, image, _ = _model_and_batch(likelihood="bernoulli", seed=3)
  image = image[:1]
  obs = np.zeros((1, 8, 8, 1), bool)
  obs[0, 3, 2:5] = True  # three observed pixels: weights spread over the draws
  keys = jax.random.split(jax.random.key(1), 1)
  k, m = 4, 3000
  out = imputation.impute(params, image, obs, keys, model=model, num_samples=k, num_imputations=m)
  data_keys, _ = losses.split_keys(keys)
  _, log_w = losses.log_weights(params, {"image": image, "observed": obs}, data_keys, jnp.arange(k), model=model)
  _, context, latent_keys = losses.posterior(params, {"image": image, "observed": obs}, data_keys, model=model)
  means = np.stack([np.clip(np.asarray(model_lib.infer(params, context, latent_keys, model=model,
                                                       sample=s).p_x.mean[0]), 0, 1) for s in range(k)])
  picks = np.asarray(out.multiple)[:, 0]
  missing_px = ~np.broadcast_to(obs[0], image.shape[1:])
  distance = np.abs(picks[:, None][:, :, missing_px] - means[None][:, :, missing_px]).max(-1)  # [m, k]
  assert np.all(distance.min(1) < 1e-5)  # every pick is one of the draws
  counts = np.bincount(distance.argmin(1), minlength=k)
  w = np.asarray(jax.nn.softmax(np.asarray(log_w[:, 0], np.float64)))
  assert w.max() < 0.7, w  # a test of the resampling needs spread weights
  assert stats.chisquare(counts, m * w).pvalue > 1e-4, (counts, m * w)


# --- sample.py --inpaint ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def miwae_run(tmp_path_factory) -> Path:
  wd = tmp_path_factory.mktemp("miwae") / "run"
  run("train.py", f"--workdir={wd}", *TINY, "--config.data.missing=mcar", "--config.loss=miwae")
  return wd


def _write(path: Path, array: np.ndarray) -> str:
  Image.fromarray(array).save(path)
  return str(path)


@pytest.mark.parametrize("size", [(28, 28), (45, 31)])
def test_inpaint_fills_only_the_masked_pixels_at_the_input_size(miwae_run, tmp_path, size):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, size=size, dtype=np.uint8)
  mask = np.zeros(size, np.uint8)
  mask[5:15, 8:20] = 255
  out = tmp_path / "out.png"
  proc = run("sample.py", f"--workdir={miwae_run}", f"--inpaint={_write(tmp_path / 'a.png', image)}",
             f"--mask={_write(tmp_path / 'm.png', mask)}", f"--output={out}", "--importance_samples=20")
  filled = np.asarray(Image.open(out))
  assert filled.shape == size
  np.testing.assert_array_equal(filled[mask == 0], image[mask == 0])
  assert (filled[mask > 0] != image[mask > 0]).mean() > 0.5, proc.stdout  # the hole was really filled


def test_inpaint_with_imputations_writes_a_row(miwae_run, tmp_path):
  image = np.full((28, 28), 200, np.uint8)
  mask = np.zeros((28, 28), np.uint8)
  mask[:, :10] = 255
  out = tmp_path / "row.png"
  run("sample.py", f"--workdir={miwae_run}", f"--inpaint={_write(tmp_path / 'a.png', image)}",
      f"--mask={_write(tmp_path / 'm.png', mask)}", f"--output={out}", "--importance_samples=10",
      "--num_imputations=3")
  row = np.asarray(Image.open(out))
  assert row.shape == (28 + 4, 5 * (28 + 2) + 2)  # input, single imputation, 3 imputations; padding 2
  tiles = [row[2:30, 2 + 30 * i:30 + 30 * i] for i in range(5)]
  assert np.all(tiles[0][:, :10] == 128) and np.all(tiles[0][:, 10:] == 200)
  for tile in tiles[1:]:
    assert np.all(tile[:, 10:] == 200)


@pytest.mark.parametrize("case, fragment", [
    ("no_mask", "--inpaint needs --mask"),
    ("mask_only", "--mask goes with --inpaint"),
    ("size", "the mask must be the image's size"),
    ("empty", "marks no pixel missing"),
    ("label", "--label needs a conditional model"),
    ("unreadable", "is not a readable image"),
])
def test_inpaint_bad_input_is_one_error_and_no_file(miwae_run, tmp_path, case, fragment):
  image = _write(tmp_path / "a.png", np.zeros((28, 28), np.uint8))
  mask_arr = np.zeros((28, 28), np.uint8)
  mask_arr[:4] = 255
  mask = _write(tmp_path / "m.png", mask_arr)
  (tmp_path / "bad.png").write_text("not an image")
  args = {"no_mask": [f"--inpaint={image}"],
          "mask_only": [f"--mask={mask}"],
          "size": [f"--inpaint={image}", f"--mask={_write(tmp_path / 's.png', np.zeros((20, 28), np.uint8))}"],
          "empty": [f"--inpaint={image}", f"--mask={_write(tmp_path / 'e.png', np.zeros((28, 28), np.uint8))}"],
          "label": [f"--inpaint={image}", f"--mask={mask}", "--label=1"],
          "unreadable": [f"--inpaint={tmp_path / 'bad.png'}", f"--mask={mask}"]}[case]
  proc = run("sample.py", f"--workdir={miwae_run}", *args, f"--output={tmp_path / 'out.png'}", check=False)
  assert_user_error(proc, fragment)
  assert not (tmp_path / "out.png").exists()


def test_inpaintings_grid_of_test_images_under_the_runs_pattern(miwae_run, tmp_path):
  from vae_jax import inference
  from vae_jax.data.missing import MissingPattern
  out = tmp_path / "grid.png"
  run("sample.py", f"--workdir={miwae_run}", f"--output={tmp_path / 's.png'}", f"--inpaintings={out}",
      "--num_inpaintings=3", "--num_imputations=1", "--importance_samples=10")
  grid = np.asarray(Image.open(out))
  assert grid.shape == (4 * 29 + 1, 3 * 29 + 1)  # rows: original, input, single, 1 resampled; 3 images
  trained = inference.load_trained(miwae_run)
  x, _ = inference.first_test_images(trained, 3)
  observed = MissingPattern.from_config(trained.config.data).observed("test", np.arange(3), (28, 28))[..., 0]
  for i in range(3):
    tile = lambda row: grid[1 + 29 * row:29 * (row + 1), 1 + 29 * i:29 * (i + 1)]  # noqa: E731
    np.testing.assert_array_equal(tile(0), x[i, ..., 0])
    np.testing.assert_array_equal(tile(1), np.where(observed[i], x[i, ..., 0], 128))
    for row in (2, 3):
      np.testing.assert_array_equal(tile(row)[observed[i]], x[i, ..., 0][observed[i]])
