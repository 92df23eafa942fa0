"""benchmarks/conv3x3_forms.py: the matrix-product forms of a 3x3 'SAME' convolution are that convolution."""

import importlib.util

import jax
import numpy as np

from conftest import REPO


def _forms():
  spec = importlib.util.spec_from_file_location("conv3x3_forms", REPO / "benchmarks" / "conv3x3_forms.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _direct(x, k):
  """y[b, h, w, o] = sum_{i, j, c} x_pad[b, h + i, w + j, c] k[i, j, c, o], by loops (float64)."""
  B, H, W, _ = x.shape
  x_pad = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  y = np.zeros((B, H, W, k.shape[-1]))
  for h in range(H):
    for w in range(W):
      y[:, h, w] = np.einsum("bijc,ijco->bo", x_pad[:, h:h + 3, w:w + 3], k)
  return y


def test_every_form_equals_a_direct_convolution_with_unequal_sides_and_channels():
  forms = _forms()
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  k = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
  want = _direct(x, k)
  for fn in (forms.conv, forms.shifts, forms.patches):
    np.testing.assert_allclose(np.asarray(jax.jit(fn)(x, k)), want, rtol=1e-5, atol=1e-5, err_msg=fn.__name__)
