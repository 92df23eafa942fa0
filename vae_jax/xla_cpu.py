"""An XLA:CPU code-generation choice a config makes: `xla_cpu_loop_unrolling` (default True).

XLA:CPU (jax 0.10) compiles an elementwise fusion that holds a broadcast (any constant, such as
GELU's 0.5 and sqrt(2/pi)) with its loop emitter. With loop unrolling on, that emitter leaves a
loop over a rank-3 or rank-4 array with a short minor dimension scalar: tanh-GELU on f32[500,14,14,8]
costs 5-7 ns per element instead of under 1 ns. Conv models' activations are such arrays. The
backend option `xla_cpu_disable_loop_unrolling` vectorises them again, but it slows other models
(the tanh MLP ladder and `mnist_ar` by 10-15%), so it is a per-config choice: the conv hierarchy's
configs set `xla_cpu_loop_unrolling = False`. Measured A/B: `benchmarks/xla_cpu_option_ab.py`.

The option is process-wide and read from `XLA_FLAGS` when JAX creates its CPU backend (the first
computation or `jax.devices()`): `apply(config)` must run before that. train.py, sample.py and
`python -m vae_jax.evaluate` call it as soon as they have the config. Nothing is added when
`XLA_FLAGS` already names `xla_backend_extra_options`: the user's own choice stands.
"""

from __future__ import annotations

import os
from typing import MutableMapping

import ml_collections
from absl import logging

OPTION = "--xla_backend_extra_options=xla_cpu_disable_loop_unrolling"


def add_option(environ: MutableMapping[str, str]) -> bool:
  """Appends OPTION to environ["XLA_FLAGS"] unless it names backend options already; True if it did."""
  flags = environ.get("XLA_FLAGS", "")
  if "xla_backend_extra_options" in flags:
    return False
  environ["XLA_FLAGS"] = f"{flags} {OPTION}".strip()
  return True


def _backend_started() -> bool:
  try:
    from jax._src import xla_bridge
    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):  # a JAX without this private hook: assume not started
    return False


def apply(config: ml_collections.ConfigDict, environ: MutableMapping[str, str] = os.environ) -> bool:
  """Adds OPTION when `config.xla_cpu_loop_unrolling` is False and JAX's backend has not started
  (afterwards it could only leak into child processes); True if it added it."""
  if config.get("xla_cpu_loop_unrolling", True) or "xla_backend_extra_options" in environ.get("XLA_FLAGS", ""):
    return False
  if _backend_started():
    logging.warning("xla_cpu_loop_unrolling=False is ignored in this process: JAX's backend had "
                    "started before the config was read (see vae_jax/xla_cpu.py)")
    return False
  return add_option(environ)
