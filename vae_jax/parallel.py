"""Data parallelism over the local devices: `jax.pmap` or `jax.jit` with a NamedSharding.

Both backends run the same step function (see `train_step.py`). The pmap
backend maps it over a named axis, AXIS, and the step reduces with
`lax.pmean(..., AXIS)`; the jit backend passes `axis_name=None` and lets XLA
partition the global batch by its sharding along the mesh axis AXIS. State is
replicated; batches are split along their leading axis. Swapping one for the
other is one config value, `parallel`.

Multi-host: each process feeds its slice of the global batch
(`process_slice`); `jax.pmap` and the mesh span every device of every process
once `jax.distributed.initialize()` has run.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vae_jax.errors import UserError

AXIS = "batch"
BACKENDS = ("pmap", "jit")


def process_slice(global_batch: int) -> slice:
  """This process's rows of a global batch."""
  n = jax.process_count()
  per = global_batch // n
  return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


def _check_split(batch: int, num_devices: int) -> None:
  if batch % num_devices:
    raise UserError(f"a batch of {batch} does not split over {num_devices} devices; "
                    f"use a batch size divisible by {num_devices}")


class PmapBackend:
  """Replicated state with a leading device axis; batches reshaped to [D, B/D, ...]."""

  name = "pmap"

  def __init__(self, devices: Sequence[jax.Device]):
    self.devices = list(devices)
    self.num_devices = len(self.devices)
    self._stack = NamedSharding(Mesh(np.array(self.devices), (AXIS,)), P(AXIS))

  def replicate(self, tree: Any) -> Any:
    return jax.tree.map(
        lambda x: jax.device_put(jnp.stack([x] * self.num_devices), self._stack), tree)

  def unreplicate(self, tree: Any) -> Any:
    return jax.tree.map(lambda x: x[0], tree)

  def shard_batch(self, batch: dict, batch_axis: int = 0) -> dict:
    """Splits axis `batch_axis` over the devices, which become a new leading axis."""
    def split(x):
      x = np.asarray(x)
      _check_split(x.shape[batch_axis], self.num_devices)
      shape = (*x.shape[:batch_axis], self.num_devices, -1, *x.shape[batch_axis + 1:])
      return jax.device_put(np.moveaxis(x.reshape(shape), batch_axis, 0), self._stack)
    return jax.tree.map(split, batch)

  def compile(self, fn: Callable, *, donate_argnums: tuple[int, ...] = ()) -> Callable:
    """`fn(*args, axis_name=...)` mapped over the devices; all arguments are per-device."""
    devices = self.devices if jax.process_count() == 1 else None  # None: every host's devices
    return jax.pmap(functools.partial(fn, axis_name=AXIS), axis_name=AXIS,
                    devices=devices, donate_argnums=donate_argnums)


class JitBackend:
  """Global arrays: state replicated over a 1-D mesh, batches sharded along AXIS."""

  name = "jit"

  def __init__(self, devices: Sequence[jax.Device]):
    self.devices = list(devices)
    self.num_devices = len(self.devices)  # local devices: the host's batch splits over these
    global_devices = self.devices if jax.process_count() == 1 else jax.devices()
    mesh = Mesh(np.array(global_devices), (AXIS,))
    self._replicated = NamedSharding(mesh, P())
    self._sharded = NamedSharding(mesh, P(AXIS))

  def replicate(self, tree: Any) -> Any:
    # A fresh copy: a donated step must not free the caller's arrays (device_put may alias them).
    return jax.device_put(jax.tree.map(jnp.copy, tree), self._replicated)

  def unreplicate(self, tree: Any) -> Any:
    return tree

  def shard_batch(self, batch: dict, batch_axis: int = 0) -> dict:
    """A global array whose axis `batch_axis` is split over the mesh."""
    sharding = NamedSharding(self._sharded.mesh, P(*([None] * batch_axis), AXIS))
    def put(x):
      x = np.asarray(x)
      _check_split(x.shape[batch_axis], self.num_devices)
      return jax.make_array_from_process_local_data(sharding, x)
    return jax.tree.map(put, batch)

  def compile(self, fn: Callable, *, donate_argnums: tuple[int, ...] = ()) -> Callable:
    """`fn(*args, axis_name=None)` jitted; outputs replicated (metrics are scalars)."""
    return jax.jit(functools.partial(fn, axis_name=None), donate_argnums=donate_argnums,
                   out_shardings=self._replicated)


Backend = PmapBackend | JitBackend


def make_backend(name: str, num_devices: int = 0) -> Backend:
  """The backend `name` over the first `num_devices` local devices (0 = all)."""
  devices = jax.local_devices()
  if num_devices:
    if num_devices > len(devices):
      raise UserError(f"num_devices={num_devices} but only {len(devices)} devices are available; "
                      "set --config.num_devices=0 to use all")
    devices = devices[:num_devices]
  if name == "pmap":
    return PmapBackend(devices)
  if name == "jit":
    return JitBackend(devices)
  raise UserError(f"unknown parallel backend {name!r}; valid: {', '.join(BACKENDS)}")
