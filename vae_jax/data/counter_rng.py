"""Counter-based uniforms for the data layer: a pure function of (seed, stream, example, draw).

The data layer's random choices (missing-data masks, augmentation) must not
depend on which thread, process or epoch boundary computes them, and must be
recomputable on resume. Each is a hash of its coordinates, splitmix64's
finaliser over uint64, vectorised in numpy: one pass over a batch.
"""

from __future__ import annotations

import numpy as np

STREAMS = {"train": 1, "test": 2, "user": 3, "augment": 4}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
  """splitmix64's finaliser: a bijection of uint64 that scrambles every bit."""
  with np.errstate(over="ignore"):
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniforms(seed: int, stream: str, index_N: np.ndarray, num: int) -> np.ndarray:
  """float64 [N, num] in [0, 1): `num` uniforms for each of the examples `index_N` of `stream`."""
  with np.errstate(over="ignore"):
    key = _mix(np.asarray([seed % 2**63, STREAMS[stream]], np.uint64) * _GOLDEN)
    key_N = _mix(np.asarray(index_N, np.uint64) * _GOLDEN ^ key[0] ^ (key[1] << np.uint64(1)))
    bits = _mix(key_N[:, None] + (np.arange(1, num + 1, dtype=np.uint64) * _GOLDEN)[None, :])
  return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
