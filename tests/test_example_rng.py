"""Tests of vae_jax/example_rng.py: the cipher against published vectors and JAX's own, and the
distributions of the draws against their closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32
from scipy import stats

from vae_jax import example_rng

# Threefry-2x32, 20 rounds: Random123's known-answer vectors (kat_vectors, "threefry2x32_20"):
# (counter, key) -> output.
KAT = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0)),
]


def _u32(x):
  return jnp.asarray(np.asarray(x, np.uint32))


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_threefry_known_answers(counter, key, expected):
  y0, y1 = example_rng.threefry2x32(*(_u32(k) for k in key), *(_u32(c) for c in counter))
  assert (int(y0), int(y1)) == expected


def test_threefry_matches_jax():
  """Equal, bit for bit, to jax.extend.random.threefry_2x32 (JAX's rolled-loop Threefry) on random blocks."""
  rng = np.random.default_rng(0)
  key = rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)
  x0, x1 = (rng.integers(0, 2**32, 257, dtype=np.uint64).astype(np.uint32) for _ in range(2))
  y0, y1 = example_rng.threefry2x32(_u32(key[0]), _u32(key[1]), _u32(x0), _u32(x1))
  ref = np.asarray(threefry_2x32(_u32(key), _u32(np.concatenate([x0, x1]))))
  np.testing.assert_array_equal(np.asarray(y0), ref[:257])
  np.testing.assert_array_equal(np.asarray(y1), ref[257:])


def test_rows_depend_only_on_their_own_key():
  """Row b is a function of keys[b] alone: the same under splitting and permuting the batch."""
  keys = jax.random.split(jax.random.key(3), 5)
  full = np.asarray(example_rng.example_bits(keys, 9))
  parts = np.concatenate([example_rng.example_bits(keys[:2], 9), example_rng.example_bits(keys[2:], 9)])
  np.testing.assert_array_equal(full, parts)
  perm = np.array([4, 2, 0, 1, 3])
  np.testing.assert_array_equal(np.asarray(example_rng.example_bits(keys[perm], 9)), full[perm])
  assert len({row.tobytes() for row in full}) == 5


def test_bits_are_balanced():
  """Each of the 32 bit positions is 1 with probability 1/2 (5 standard errors)."""
  words = np.asarray(example_rng.example_bits(jax.random.split(jax.random.key(4), 64), 1024)).ravel()
  ones = ((words[:, None] >> np.arange(32, dtype=np.uint32)) & 1).mean(0)
  assert np.all(np.abs(ones - 0.5) < 5 * 0.5 / math.sqrt(words.size)), ones


def test_uniform_is_uniform():
  u32 = example_rng.uniform(jax.random.split(jax.random.key(5), 100), (20, 25))
  assert u32.shape == (100, 20, 25) and u32.dtype == jnp.float32
  u = np.asarray(u32, np.float64)
  assert u.min() >= 0.0 and u.max() < 1.0
  assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3


def test_normal_is_standard_normal():
  z = np.asarray(example_rng.normal(jax.random.split(jax.random.key(6), 200), (250,)), np.float64)
  assert np.all(np.isfinite(z))
  assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
  n = z.size
  assert abs(z.mean()) < 5 / math.sqrt(n)
  assert abs(z.var() - 1.0) < 5 * math.sqrt(2.0 / n)


def test_binarize_is_the_documented_threshold_rule():
  """x = [r < 257k + (k > 0)], with r the 16-bit halves of the example's words: low halves for the
  first ceil(n/2) pixels, high halves for the rest (recomputed here from example_bits)."""
  keys = jax.random.split(jax.random.key(7), 3)
  k = np.random.default_rng(1).integers(0, 256, (3, 5, 5, 1), dtype=np.uint8)
  x = np.asarray(example_rng.binarize(keys, jnp.asarray(k))).reshape(3, -1)
  words = np.asarray(example_rng.example_bits(keys, 13))
  r = np.concatenate([words & 0xFFFF, words >> 16], axis=1)[:, :25].astype(np.int64)
  kk = k.reshape(3, -1).astype(np.int64)
  np.testing.assert_array_equal(x, (r < 257 * kk + (kk > 0)).astype(np.float32))


def test_binarize_probability_is_within_2_pow_minus_16(monkeypatch):
  """With the 16-bit draws r running through all of 0..65535 once, the ones counted for each k are
  65536 P(x = 1): exactly ceil(65536 k / 255), so P is 0 at k = 0, 1 at k = 255, and exceeds k / 255
  by less than 2^-16 between."""
  w = np.arange(32768, dtype=np.uint32)
  all_r = jnp.asarray(((w + 32768) << 16) | w)  # low halves 0..32767, high halves 32768..65535
  monkeypatch.setattr(example_rng, "example_bits",
                      lambda keys, n, stream=0: jnp.broadcast_to(all_r, (keys.shape[0], n)))
  k = np.arange(256, dtype=np.uint8)
  pixels = jnp.asarray(np.repeat(k[:, None], 65536, axis=1))
  ones = np.asarray(example_rng.binarize(jax.random.split(jax.random.key(0), 256), pixels).sum(1), np.int64)
  ceil = -(-65536 * k.astype(np.int64) // 255)
  np.testing.assert_array_equal(ones, ceil)
  p = ones / 65536
  assert p[0] == 0.0 and p[255] == 1.0
  assert np.all(p >= k / 255) and np.max(p - k / 255) < 2.0**-16


def test_binarize_pixels_sharing_a_word_are_uncorrelated():
  """Pixel j and pixel j + n/2 take the two halves of one word; at k = 128 they must be uncorrelated."""
  n_ex, n_pix = 4000, 16
  keys = jax.random.split(jax.random.key(8), n_ex)
  x = np.asarray(example_rng.binarize(keys, jnp.full((n_ex, n_pix), 128, jnp.uint8)))
  lo, hi = x[:, : n_pix // 2].ravel(), x[:, n_pix // 2 :].ravel()
  assert abs(np.corrcoef(lo, hi)[0, 1]) < 5 / math.sqrt(lo.size)


def test_binarize_rejects_non_uint8():
  with pytest.raises(TypeError, match="uint8"):
    example_rng.binarize(jax.random.split(jax.random.key(0), 1), jnp.zeros((1, 4), jnp.float32))


def test_cipher_key_is_not_a_split_child():
  """The derived cipher key differs from the key's own data and from its jax.random.split children,
  so the example's stream is not the key data of keys derived from it by JAX."""
  key = jax.random.key(11)
  k0, k1 = example_rng.cipher_keys(key[None])
  derived = (int(k0[0, 0]), int(k1[0, 0]))
  own = tuple(int(v) for v in jax.random.key_data(key))
  children = {tuple(int(v) for v in row) for row in jax.random.key_data(jax.random.split(key, 4))}
  assert derived != own and derived not in children


def test_other_key_implementations_are_per_example_too():
  """An "rbg" key (4 words) also gives rows that depend on their own key alone."""
  keys = jax.random.split(jax.random.key(12, impl="rbg"), 4)
  full = np.asarray(example_rng.example_bits(keys, 6))
  one_by_one = np.concatenate([example_rng.example_bits(keys[i : i + 1], 6) for i in range(4)])
  np.testing.assert_array_equal(full, one_by_one)
  assert len({row.tobytes() for row in full}) == 4


def test_threefry_cipher_key_is_the_enciphered_key_data():
  """For a Threefry key the cipher key is Threefry_{key data}(DERIVE), as the module doc says."""
  keys = jax.random.split(jax.random.key(13), 3)
  k0, k1 = example_rng.cipher_keys(keys)
  data = np.asarray(jax.random.key_data(keys))
  ref = np.asarray([threefry_2x32(_u32(d), _u32([0x9E3779B9, 0x7F4A7C15])) for d in data])
  np.testing.assert_array_equal(np.concatenate([k0, k1], axis=1), ref)
