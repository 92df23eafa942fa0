"""Tests of vae_jax/networks.py: each network against its layers written out, depth_to_space, and the
config errors of make_encoder/decoder."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import networks
from vae_jax.config import base_config
from vae_jax.errors import UserError

Z = 3


def _model_config(kind, upsample="pixel_shuffle"):
  c = base_config().model
  c.encoder = c.decoder = kind
  c.latent_dim = Z
  c.hidden = (16,)
  c.channels = (4, 8)
  c.kernel = 3
  c.upsample = upsample
  return c


def _shapes(module, x):
  """Output shapes and param shapes of module(x), by abstract evaluation (nothing is compiled)."""
  params = jax.eval_shape(module.init, jax.random.key(0), x)
  out = jax.eval_shape(module.apply, params, x)
  return jax.tree.map(lambda a: a.shape, out), jax.tree.map(lambda a: a.shape, params["params"])


def _depth_to_space_loops(x, f):
  """Reference depth-to-space with explicit loops (TensorFlow's DCR order):

  out[b, i*f + di, j*f + dj, c] = x[b, i, j, (di*f + dj)*C + c].
  """
  b, h, w, cin = x.shape
  c = cin // (f * f)
  out = np.zeros((b, h * f, w * f, c), x.dtype)
  for bi in range(b):
    for i in range(h):
      for j in range(w):
        for di in range(f):
          for dj in range(f):
            for ci in range(c):
              out[bi, i * f + di, j * f + dj, ci] = x[bi, i, j, (di * f + dj) * c + ci]
  return out


@pytest.mark.parametrize("f, c", [(2, 1), (2, 3), (3, 2)])
def test_depth_to_space_matches_loop_reference(f, c):
  """depth_to_space equals an independent per-pixel loop, and is a permutation of the input values."""
  x = np.random.default_rng(0).normal(size=(2, 3, 4, c * f * f)).astype(np.float32)
  got = np.asarray(networks.depth_to_space(jnp.asarray(x), f))
  assert got.shape == (2, 3 * f, 4 * f, c)
  np.testing.assert_array_equal(got, _depth_to_space_loops(x, f))
  np.testing.assert_array_equal(_depth_to_space_slices(x, f), _depth_to_space_loops(x, f))
  np.testing.assert_array_equal(np.sort(got.ravel()), np.sort(x.ravel()))


def _conv(h, p, stride=1):
  dn = ("NHWC", "HWIO", "NHWC")
  out = jax.lax.conv_general_dilated(h, p["kernel"], (stride, stride), "SAME", dimension_numbers=dn,
                                     precision="highest")
  return np.asarray(out) + np.asarray(p["bias"])


def _dense(h, p):
  return np.asarray(h, np.float64) @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"])


def _depth_to_space_slices(x, f):
  """out[:, di::f, dj::f, :] is input channel block di*f + dj (the loop reference's rule, by slices)."""
  b, h, w, cin = x.shape
  c = cin // (f * f)
  out = np.zeros((b, h * f, w * f, c), x.dtype)
  for di in range(f):
    for dj in range(f):
      out[:, di::f, dj::f, :] = x[..., (di * f + dj) * c:(di * f + dj + 1) * c]
  return out


def _relu(h):
  return np.maximum(h, 0.0)


def _reference_encoder(kind, params, x):
  """The encoders' documented layers, written out: [Conv stride 2 -> ReLU]* or [Dense -> ReLU]*, Dense(2Z)."""
  h = np.asarray(x, np.float32)
  if kind == "conv":
    for i in range(2):
      h = _relu(_conv(h, params[f"Conv_{i}"], stride=2))
    last = params["Dense_0"]
  else:
    h = _relu(_dense(h.reshape(len(h), -1), params["Dense_0"]))
    last = params["Dense_1"]
  out = _dense(h.reshape(len(h), -1), last)
  return out[:, :Z], out[:, Z:]


def _reference_decoder(kind, upsample, params, z, image_shape):
  """Dense -> ReLU -> [H/4, W/4, 8] -> (upsample x2 -> ReLU) -> upsample x2, each upsampling by
  convolution then depth-to-space (by slices), by a stride-2 transposed convolution, or by
  nearest-neighbour repetition then convolution."""
  height, width, c_out = image_shape
  if kind == "mlp":
    h = _relu(_dense(z, params["Dense_0"]))
    return _dense(h, params["Dense_1"]).reshape(len(z), height, width, c_out)
  h = _relu(_dense(z, params["Dense_0"])).reshape(len(z), height // 4, width // 4, 8).astype(np.float32)
  for i in range(2):
    if upsample == "pixel_shuffle":
      h = _depth_to_space_slices(_conv(h, params[f"Conv_{i}"]), 2)
    elif upsample == "transpose":
      p = params[f"ConvTranspose_{i}"]
      h = np.asarray(jax.lax.conv_transpose(h, p["kernel"], (2, 2), "SAME", precision="highest",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))) + np.asarray(p["bias"])
    else:
      h = _conv(np.repeat(np.repeat(h, 2, axis=1), 2, axis=2), params[f"Conv_{i}"])
    h = _relu(h) if i == 0 else h
  return h


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("kind, upsample", [("mlp", "pixel_shuffle"), ("conv", "pixel_shuffle"),
                                            ("conv", "transpose"), ("conv", "resize")])
def test_networks_compute_their_documented_layers(image_shape, kind, upsample):
  """Every registered encoder and decoder, and every upsampling mode, equals its layers written out
  independently (depth-to-space by slices, nearest repetition, lax convolutions) on random inputs."""
  # Coverage: a network registered later must join the parametrisation and get a reference above.
  assert set(networks.ENCODERS.names()) == set(networks.DECODERS.names()) == {"mlp", "conv"}
  mc = _model_config(kind, upsample)
  enc = networks.make_encoder(mc)
  dec = networks.make_decoder(mc, image_shape, out_channels=image_shape[-1])
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(3, *image_shape)).astype(np.float32)
  z = rng.normal(size=(3, Z)).astype(np.float32)
  enc_params = enc.init(jax.random.key(1), x)
  dec_params = dec.init(jax.random.key(2), z)
  with jax.default_matmul_precision("highest"):
    mean, logvar = enc.apply(enc_params, x)
    out = dec.apply(dec_params, z)
  ref_mean, ref_logvar = _reference_encoder(kind, enc_params["params"], x)
  np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(logvar, ref_logvar, rtol=1e-4, atol=1e-5)
  ref = _reference_decoder(kind, upsample, dec_params["params"], z, image_shape)
  assert out.shape == ref.shape
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
  assert np.std(ref) > 1e-3 and not np.allclose(ref[0], ref[1])  # not a trivially zero comparison


@pytest.mark.parametrize("image_shape, channels", [((28, 28, 1), (4, 8, 16)), ((30, 30, 1), (4, 8)),
                                                   ((32, 20, 3), (4, 8, 16))])
def test_conv_decoder_needs_divisible_image_size(image_shape, channels):
  """A conv decoder with L layers on an image size not divisible by 2^L is a UserError naming 2^L."""
  mc = _model_config("conv")
  mc.channels = channels
  with pytest.raises(UserError, match=f"divisible by {2 ** len(channels)}"):
    networks.make_decoder(mc, image_shape, out_channels=1)
  # The MLP decoder has no such constraint.
  mc.decoder = "mlp"
  networks.make_decoder(mc, image_shape, out_channels=1)


def test_unknown_network_names_are_user_errors():
  """Unknown encoder/decoder names and upsampling modes are UserErrors listing the valid ones."""
  mc = _model_config("mlp")
  mc.encoder = "resnet"
  with pytest.raises(UserError) as e:
    networks.make_encoder(mc)
  assert "'resnet'" in str(e.value) and "conv" in str(e.value) and "mlp" in str(e.value)
  mc = _model_config("mlp")
  mc.decoder = "transformer"
  with pytest.raises(UserError, match="conv, mlp"):
    networks.make_decoder(mc, (8, 8, 1), out_channels=1)
  mc = _model_config("conv", upsample="bilinear")
  with pytest.raises(UserError) as e:
    networks.make_decoder(mc, (8, 8, 1), out_channels=1)
  assert all(m in str(e.value) for m in networks.UPSAMPLE_MODES)


def test_custom_encoder_from_import_path(tmp_path, monkeypatch):
  """model.encoder='module:Class' builds the user's class from the config fields it declares."""
  (tmp_path / "vae_jax_test_my_nets.py").write_text(
      "import flax.linen as nn\n"
      "import jax.numpy as jnp\n"
      "class Linear(nn.Module):\n"
      "  latent_dim: int\n"
      "  @nn.compact\n"
      "  def __call__(self, x):\n"
      "    h = nn.Dense(2 * self.latent_dim)(x.reshape(x.shape[0], -1))\n"
      "    return jnp.split(h, 2, axis=-1)\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.delitem(sys.modules, "vae_jax_test_my_nets", raising=False)
  mc = _model_config("mlp")
  mc.encoder = "vae_jax_test_my_nets:Linear"
  enc = networks.make_encoder(mc)
  assert type(enc).__name__ == "Linear" and enc.latent_dim == Z  # the config's latent_dim reached it
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 4, 4, 1)), jnp.float32)
  variables = enc.init(jax.random.key(0), x)
  mean, logvar = enc.apply(variables, x)
  dense = variables["params"]["Dense_0"]
  want = np.asarray(x).reshape(2, 16) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
  np.testing.assert_allclose(mean, want[:, :Z], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logvar, want[:, Z:], rtol=1e-5, atol=1e-6)
  # A model named by the config encodes with it: q(z | x) has that mean.
  from vae_jax import model as model_lib
  c = base_config()
  c.data.image_size, c.model.latent_dim, c.model.encoder = 4, Z, "vae_jax_test_my_nets:Linear"
  m = model_lib.make_model(c, (4, 4, 1))
  params = model_lib.init(m, jax.random.key(1), (4, 4, 1))
  dense = params["encoder"]["Dense_0"]
  want = np.asarray(x).reshape(2, 16) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
  np.testing.assert_allclose(model_lib.encode(params, x, model=m).mean, want[:, :Z], rtol=1e-5, atol=1e-6)
