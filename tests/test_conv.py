"""vae_jax.conv.Conv against flax's nn.Conv (lax.conv_general_dilated) with the same parameters."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.conv import Conv


def _pair(kwargs, x):
  ours, theirs = Conv(**kwargs), nn.Conv(**kwargs)
  params = theirs.init(jax.random.key(0), x)
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)])
  return ours, theirs, params


@pytest.mark.parametrize("kwargs", [
    dict(features=5, kernel_size=(1, 1)),
    dict(features=5, kernel_size=(1, 1), padding="VALID", use_bias=False),
    dict(features=5, kernel_size=(1, 1), strides=(2, 2)),  # not pointwise: deferred to nn.Conv
    dict(features=5, kernel_size=(3, 3), padding="SAME"),
])
def test_matches_flax_conv_values_and_gradients(kwargs):
  x = jax.random.normal(jax.random.key(2), (3, 6, 6, 4))
  ours, theirs, params = _pair(kwargs, x)
  y_ours, y_theirs = ours.apply(params, x), theirs.apply(params, x)
  assert y_ours.shape == y_theirs.shape
  np.testing.assert_allclose(y_ours, y_theirs, rtol=1e-5, atol=1e-5)
  cot = jax.random.normal(jax.random.key(3), y_theirs.shape)
  grads = [jax.grad(lambda p, xx: jnp.sum(m.apply(p, xx) * cot), argnums=(0, 1))(params, x) for m in (ours, theirs)]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_same_parameter_tree_and_initial_values_as_flax_conv():
  class Net(nn.Module):
    conv: type

    @nn.compact
    def __call__(self, x):
      x = self.conv(8, (1, 1))(x)
      x = self.conv(8, (3, 3))(x)
      return self.conv(3, (1, 1), kernel_init=nn.initializers.zeros)(x)

  x = jnp.ones((2, 5, 5, 4))
  ours, theirs = Net(Conv).init(jax.random.key(0), x), Net(nn.Conv).init(jax.random.key(0), x)
  assert jax.tree.structure(ours) == jax.tree.structure(theirs)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(Net(Conv).apply(theirs, x), Net(nn.Conv).apply(theirs, x), rtol=1e-5, atol=1e-6)
