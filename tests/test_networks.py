"""Tests of vae_jax/networks.py: shapes, depth_to_space, and the config errors of make_encoder/decoder."""

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
  np.testing.assert_array_equal(np.sort(got.ravel()), np.sort(x.ravel()))


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("kind, upsample", [("mlp", "pixel_shuffle"), ("conv", "pixel_shuffle"),
                                            ("conv", "transpose"), ("conv", "resize")])
def test_encoder_decoder_shapes(image_shape, kind, upsample):
  """Encoders give (mean, logvar) of [B, Z]; decoders give [B, H, W, C] for every network and upsampling mode."""
  mc = _model_config(kind, upsample)
  enc = networks.make_encoder(mc)
  dec = networks.make_decoder(mc, image_shape, out_channels=image_shape[-1])
  (mean, logvar), enc_params = _shapes(enc, jnp.zeros((5, *image_shape)))
  assert mean == logvar == (5, Z)
  out, dec_params = _shapes(dec, jnp.zeros((5, Z)))
  assert out == (5, *image_shape)
  if kind == "conv":
    # Each stride-2 conv halves H and W: two layers of 4 then 8 channels leave H/4 x W/4 x 8.
    h, w = image_shape[0] // 4, image_shape[1] // 4
    assert enc_params["Dense_0"]["kernel"] == (h * w * 8, 2 * Z)
    assert dec_params["Dense_0"]["kernel"] == (Z, h * w * 8)
  else:
    assert enc_params["Dense_0"]["kernel"] == (int(np.prod(image_shape)), 16)
    assert dec_params["Dense_1"]["kernel"] == (16, int(np.prod(image_shape)))


def test_conv_decoder_pixel_shuffle_runs_and_depends_on_z():
  """A real forward pass of the default conv decoder is finite and differs between latents."""
  mc = _model_config("conv")
  dec = networks.make_decoder(mc, (8, 8, 1), out_channels=2)
  out = np.asarray(jax.jit(lambda k: dec.apply(dec.init(k, jnp.zeros((1, Z))),
                                                jax.random.normal(jax.random.key(1), (2, Z))))(
      jax.random.key(0)))
  assert out.shape == (2, 8, 8, 2) and np.all(np.isfinite(out))
  assert not np.allclose(out[0], out[1])


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


def test_registered_network_names():
  """The built-in registries hold exactly mlp and conv."""
  assert networks.ENCODERS.names() == ["conv", "mlp"]
  assert networks.DECODERS.names() == ["conv", "mlp"]


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
  assert type(enc).__name__ == "Linear" and enc.latent_dim == Z
  (mean, logvar), params = _shapes(enc, jnp.zeros((2, 4, 4, 1)))
  assert mean == logvar == (2, Z) and params["Dense_0"]["kernel"] == (16, 2 * Z)
