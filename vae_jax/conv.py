"""`Conv`: flax's `nn.Conv`, with 1x1 kernels computed as a matrix product.

A 1x1, stride-1 convolution is y[b, h, w, o] = sum_c x[b, h, w, c] K[0, 0, c, o] + bias[o].
XLA:CPU runs it as a general convolution, up to 7x slower than the same `dot`
(4x for the gradient) on this 2-core machine (`benchmarks/conv_pointwise.py`), so
this class computes exactly that sum with `einsum`. Parameters keep nn.Conv's
names and shapes (kernel [1, 1, C, O], bias [O]), and the class keeps the name
`Conv`, so flax's automatic module names (`Conv_0`, ...) and saved checkpoints
are unchanged. Every other kernel size, stride, dilation or padding defers to nn.Conv.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype


class Conv(nn.Conv):
  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    if not self._pointwise():
      return super().__call__(inputs)
    kernel = self.param("kernel", self.kernel_init, (1, 1, inputs.shape[-1], self.features), self.param_dtype)
    inputs, kernel = promote_dtype(inputs, kernel, dtype=self.dtype)
    y = jnp.einsum("...c,co->...o", inputs, kernel[0, 0], precision=self.precision)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(y.dtype)
    return y

  def _pointwise(self) -> bool:
    ones = (None, 1, (1,), (1, 1))
    return (not isinstance(self.kernel_size, int) and tuple(self.kernel_size) == (1, 1)
            and self.strides in ones and self.input_dilation in ones and self.kernel_dilation in ones
            and self.feature_group_count == 1 and self.mask is None and self.shared_weights
            and self.padding in ("SAME", "VALID", "CIRCULAR", "REFLECT"))
