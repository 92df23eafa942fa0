"""Per-example random draws: a counter-based cipher keyed by each example's own key.

Training draws fresh noise for every pixel of every example at every step
(binarisation, dequantisation) and for every latent (the reparameterisation).
Each example has its own key (`train_step.example_keys`), so the draws depend
on (seed, step, example) and never on how a batch is split over devices.

The generator is Threefry-2x32 with 20 rounds (Salmon et al. 2011, "Parallel
random numbers: as easy as 1, 2, 3"), the cipher `jax.random` uses by default:

    word_i = Threefry_k(stream, i)[0],   i = 0, 1, 2, ...

with a 64-bit cipher key k derived from the example's key: for a Threefry key
(JAX's default), k = Threefry_key(DERIVE), the key's own data enciphered at
the counter block DERIVE, whose high word is non-zero, so it is never one of
the counters `jax.random`'s split, fold_in (of 32-bit data) and bits use.
Longer keys (e.g. "rbg") are chained through the cipher two words at a time.

`stream` (default 0) is the high word of the counter block: distinct streams
of one key are disjoint sets of counter blocks, hence independent draws. The
models use stream `latent_stream(sample, group)` for latent group g of
importance sample s, so stream 0 (group 0 of a single draw) is the stream a
single-latent VAE always used.

Why not `jax.random.uniform` directly: on XLA:CPU, `jax.random` lowers Threefry
as a rolled loop, and binarising one 128-image MNIST batch cost about 1.2 ms of
a 6 ms train step (jax 0.10, 2-core CPU, measured). Written out here in `jnp`,
XLA fuses the 20 rounds into one vectorised loop. The cipher's words are
materialised once (`optimization_barrier`), because XLA's loop fusion would
otherwise recompute the cipher inside every consumer. Binarisation takes 16
bits per pixel, two pixels per cipher call. Together: 0.2-0.5 ms.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)
_DERIVE = (np.uint32(0x9E3779B9), np.uint32(0x7F4A7C15))  # golden-ratio digits: nothing up my sleeve


def _rotl(x: jax.Array, r: int) -> jax.Array:
  return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(key0: jax.Array, key1: jax.Array, x0: jax.Array,
                 x1: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Threefry-2x32-20 of the counter block (x0, x1) under the key (key0, key1).

  All four are uint32 arrays that broadcast together. Bit-exact with
  `jax.extend.random.threefry_2x32` and the Random123 known-answer vectors.
  """
  ks = (key0, key1, key0 ^ key1 ^ _KEY_PARITY)
  x0 = x0 + ks[0]
  x1 = x1 + ks[1]
  for i in range(5):  # 5 groups of 4 rounds, a key injection after each group
    for r in _ROTATIONS[i % 2]:
      x0 = x0 + x1
      x1 = _rotl(x1, r) ^ x0
    x0 = x0 + ks[(i + 1) % 3]
    x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x0, x1


def cipher_keys(keys_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The two uint32 words of each example's cipher key, each [B, 1] (see the module doc).

  The key's data, taken two words at a time, is chained through the cipher at
  the counter block DERIVE: k <- Threefry_{k xor (w0, w1)}(DERIVE) from k = 0.
  For a Threefry key (two words) that is k = Threefry_key(DERIVE).
  """
  data_Bm = jax.random.key_data(keys_B).reshape(keys_B.shape[0], -1)
  if data_Bm.dtype != jnp.uint32:
    raise TypeError(f"expected a key implementation with uint32 data, got {data_Bm.dtype}")
  if data_Bm.shape[1] % 2:
    data_Bm = jnp.pad(data_Bm, ((0, 0), (0, 1)))
  k0 = k1 = jnp.zeros(keys_B.shape[:1], jnp.uint32)
  for j in range(0, data_Bm.shape[1], 2):
    k0, k1 = threefry2x32(k0 ^ data_Bm[:, j], k1 ^ data_Bm[:, j + 1], *_DERIVE)
  return k0[:, None], k1[:, None]


MAX_GROUPS = 1024  # latent groups per model that get distinct streams


def latent_stream(sample: int | jax.Array, group: int) -> jax.Array:
  """The stream of latent group `group` in importance sample `sample`: sample * 1024 + group."""
  if not 0 <= group < MAX_GROUPS:
    raise ValueError(f"latent group {group} is outside [0, {MAX_GROUPS})")
  return jnp.asarray(sample, jnp.uint32) * np.uint32(MAX_GROUPS) + np.uint32(group)


def example_bits(keys_B: jax.Array, n: int, stream: int | jax.Array = 0) -> jax.Array:
  """n random uint32 words per example, [B, n]; row b depends on keys_B[b] alone.

  `stream` (a uint32, may be traced) picks an independent stream of each key.
  """
  k0_B1, k1_B1 = cipher_keys(keys_B)
  counter = jnp.arange(n, dtype=jnp.uint32)
  high = jnp.broadcast_to(jnp.asarray(stream, jnp.uint32), counter.shape)
  word_Bn, _ = threefry2x32(k0_B1, k1_B1, high, counter)
  return jax.lax.optimization_barrier(word_Bn)


def uniform(keys_B: jax.Array, shape: tuple[int, ...], stream: int | jax.Array = 0) -> jax.Array:
  """U[0, 1) float32, [B, *shape]: the top 23 bits of a word as a mantissa (as jax.random does)."""
  bits = example_bits(keys_B, math.prod(shape), stream).reshape(keys_B.shape[0], *shape)
  one_to_two = jax.lax.bitcast_convert_type((bits >> np.uint32(9)) | np.uint32(0x3F800000),
                                            jnp.float32)
  return one_to_two - 1.0


def normal(keys_B: jax.Array, shape: tuple[int, ...], stream: int | jax.Array = 0) -> jax.Array:
  """N(0, 1) float32, [B, *shape]: sqrt(2) erfinv(v), v uniform on (-1, 1) (as jax.random does)."""
  lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
  v = jnp.maximum(lo, 2.0 * uniform(keys_B, shape, stream) - 1.0)
  return np.float32(math.sqrt(2.0)) * jax.lax.erf_inv(v)


def binarize(keys_B: jax.Array, intensity_B: jax.Array) -> jax.Array:
  """x ~ Bernoulli(k / 255) per uint8 intensity k, as float32 0/1 of the same shape.

  x = 1 iff r < t(k), with r uniform on {0, ..., 65535} (16 random bits) and
  t(k) = ceil(65536 k / 255) = 257 k + [k > 0]. Then P(x = 1) = t(k) / 65536
  is exactly 0 at k = 0 and exactly 1 at k = 255, and otherwise exceeds k/255
  by (255 - k) / (255 * 65536) < 2^-16.
  """
  if intensity_B.dtype != jnp.uint8:
    raise TypeError(f"binarize expects uint8 intensities, got {intensity_B.dtype}")
  n = math.prod(intensity_B.shape[1:])
  words_Bw = example_bits(keys_B, (n + 1) // 2)
  r_Bn = jnp.concatenate([words_Bw & np.uint32(0xFFFF), words_Bw >> np.uint32(16)], axis=1)[:, :n]
  k = intensity_B.astype(jnp.uint32)
  threshold = k * np.uint32(257) + (k > 0).astype(jnp.uint32)
  return jnp.where(r_Bn.reshape(intensity_B.shape) < threshold, 1.0, 0.0).astype(jnp.float32)
