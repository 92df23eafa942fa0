"""An XLA:CPU code-generation choice a config makes: `xla_cpu_loop_unrolling` (default True).

XLA:CPU (jax 0.10) compiles an elementwise fusion that holds a broadcast (any constant, such as
GELU's 0.5 and sqrt(2/pi)) with its loop emitter. With loop unrolling on, that emitter leaves a
loop over a rank-3 or rank-4 array with a short minor dimension scalar: tanh-GELU on f32[500,14,14,8]
costs 5-7 ns per element instead of under 1 ns. Conv models' activations are such arrays. The
backend option `xla_cpu_disable_loop_unrolling` vectorises them again, but it slows other models
(train steps of the tanh MLP ladder and `mnist_ar` take 17-20% more time), so it is a per-config
choice: the conv hierarchy's configs set `xla_cpu_loop_unrolling = False`. Measured A/B:
`benchmarks/xla_cpu_option_ab.py`.

The option is process-wide and read from `XLA_FLAGS` when JAX creates its CPU backend (the first
computation or `jax.devices()`): `apply(config)` must run before that. train.py, sample.py,
`python -m vae_jax.evaluate` and benchmarks/is_nll_parts.py call it as soon as they have the
config (for sampling and evaluation, the run's saved config); a program of your own calls it the
same way. Backend options already in `XLA_FLAGS` are kept: the key joins their list. Measured on
CPUs only. XLA hands backend options that start with `xla_` to no LLVM parser (an unknown
`xla_foo` passes on CPU; `foo` aborts), so other backends should ignore it; not run on a GPU.
"""

from __future__ import annotations

import os
import re
from typing import MutableMapping

import ml_collections
from absl import logging

KEY = "xla_cpu_disable_loop_unrolling"
OPTION = f"--xla_backend_extra_options={KEY}"


def add_option(environ: MutableMapping[str, str]) -> bool:
  """Adds KEY to environ["XLA_FLAGS"]: to its last --xla_backend_extra_options list, else as OPTION.

  True if it changed anything."""
  flags = environ.get("XLA_FLAGS", "")
  if KEY in flags:
    return False
  lists = list(re.finditer(r"--xla_backend_extra_options=(\S*)", flags))
  if not lists:
    environ["XLA_FLAGS"] = f"{flags} {OPTION}".strip()
  else:
    value = lists[-1]
    merged = f"{value.group(1)},{KEY}" if value.group(1) else KEY
    environ["XLA_FLAGS"] = flags[:value.start(1)] + merged + flags[value.end(1):]
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
  if config.get("xla_cpu_loop_unrolling", True) or KEY in environ.get("XLA_FLAGS", ""):
    return False
  if _backend_started():
    logging.warning("xla_cpu_loop_unrolling=False is ignored in this process: JAX's backend had "
                    "started before the config was read (see vae_jax/xla_cpu.py)")
    return False
  return add_option(environ)
