"""Data parallelism, in one process or many: `jax.pmap` or `jax.jit` with a NamedSharding.

Both backends run the same step function (see `train_step.py`). The pmap
backend maps it over a named axis, AXIS, and the step reduces with
`lax.pmean(..., AXIS)`; the jit backend passes `axis_name=None` and lets XLA
partition the global batch by its sharding along the mesh axis AXIS. State is
replicated; batches are split along their leading axis. Swapping one for the
other is one config value, `parallel`.

Multi-host (`initialize_distributed`): every process runs the same program on
its own devices and feeds its slice of the global batch (`process_slice`);
`jax.pmap` and the mesh span the chosen devices of every process. State is
replicated on every device of every process, so each process reads its own
copy (`unreplicate`); nothing is fetched from another host.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vae_jax.errors import UserError, one_line

AXIS = "batch"
BACKENDS = ("pmap", "jit")


def initialize_distributed(auto: bool = False, *, coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None) -> bool:
  """Joins a multi-process run; returns whether it did. Call before JAX touches any device.

  With all three of `coordinator_address` (HOST:PORT of process 0), `num_processes` and
  `process_id`: `jax.distributed.initialize` with them. With none of them and `auto`: with
  jax's cluster auto-detection (SLURM, Open MPI, Cloud TPU...). With none and not `auto`: nothing
  (one process). Some but not all: UserError. On CPU, collectives across processes use gloo.
  """
  given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
           "process_id": process_id}
  missing = [f"--{k}" for k, v in given.items() if v is None]
  if len(missing) == len(given):
    if auto:
      _join("--distributed (cluster auto-detection)")
    return auto
  if missing:
    present = [f"--{k}" for k, v in given.items() if v is not None]
    raise UserError(f"{', '.join(present)} given without {' and '.join(missing)}: a multi-process run "
                    "needs all of --coordinator_address=HOST:PORT, --num_processes=N and "
                    "--process_id=I (or --distributed alone for a detected cluster)")
  _check_process(coordinator_address, num_processes, process_id)
  _join(f"process {process_id} of {num_processes} at {coordinator_address}",
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id)
  return True


def _join(what: str, **kwargs) -> None:
  """`jax.distributed.initialize(**kwargs)`; its failure (no cluster found, no coordinator) is a UserError."""
  _use_gloo_on_cpu()
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    raise UserError(f"cannot start the multi-process run ({what}): {one_line(e).rstrip('.')}; "
                    "outside a cluster jax detects (SLURM, Open MPI, Cloud TPU...), pass "
                    "--coordinator_address=HOST:PORT --num_processes=N --process_id=I to every "
                    "process") from None


def _check_process(coordinator_address: str, num_processes: int, process_id: int) -> None:
  host, colon, port = coordinator_address.rpartition(":")
  if not (host and colon and port.isdigit()):
    raise UserError(f"--coordinator_address={coordinator_address} is not HOST:PORT, "
                    "e.g. --coordinator_address=10.0.0.1:1234")
  if not 0 <= process_id < num_processes:
    raise UserError(f"--process_id={process_id} must be in 0..{num_processes - 1} "
                    f"(--num_processes={num_processes})")


def _use_gloo_on_cpu() -> None:
  """Gloo for CPU collectives across processes, unless another implementation was chosen.

  Recent jax (0.10 here) defaults to gloo already; older versions defaulted to none, and a CPU
  computation spanning processes then failed. Only the CPU backend reads this setting.
  """
  if not jax.config.jax_cpu_collectives_implementation:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")


def process_slice(global_batch: int) -> slice:
  """This process's rows of a global batch."""
  n = jax.process_count()
  per = global_batch // n
  return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


def _check_split(batch: int, num_devices: int) -> None:
  if batch % num_devices:
    raise UserError(f"a batch of {batch} does not split over {num_devices} devices; "
                    f"use a batch size divisible by {num_devices}")


def _local_copy(x: Any) -> Any:
  """This process's copy of a replicated array (no transfer from another host); others as they are."""
  return x.addressable_data(0) if isinstance(x, jax.Array) else x


def _global_replica(x: Any, sharding: NamedSharding) -> jax.Array:
  """`x` (the same value in every process) on every device of `sharding`, in fresh buffers."""
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    data = _global_replica(jax.random.key_data(x), sharding)
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
  host = np.asarray(jax.device_get(x))
  return jax.make_array_from_callback(host.shape, sharding, lambda index: np.array(host[index]))


class PmapBackend:
  """Replicated state with a leading device axis; batches reshaped to [D, B/D, ...].

  `devices` are this process's; `global_devices` those of every process (the same list with
  one process), over which `pmap` maps. Arrays passed and returned are this process's part.
  """

  name = "pmap"

  def __init__(self, devices: Sequence[jax.Device], global_devices: Sequence[jax.Device] | None = None):
    self.devices = list(devices)
    self.global_devices = list(global_devices or devices)
    self.num_devices = len(self.devices)
    self._stack = NamedSharding(Mesh(np.array(self.devices), (AXIS,)), P(AXIS))

  def replicate(self, tree: Any) -> Any:
    return jax.tree.map(
        lambda x: jax.device_put(jnp.stack([x] * self.num_devices), self._stack), tree)

  def unreplicate(self, tree: Any) -> Any:
    """The first local device's copy, without the device axis."""
    return jax.tree.map(lambda x: _local_copy(x).reshape(x.shape[1:]), tree)

  def shard_batch(self, batch: dict, batch_axis: int = 0) -> dict:
    """Splits axis `batch_axis` over the devices, which become a new leading axis."""
    def split(x):
      x = np.asarray(x)
      _check_split(x.shape[batch_axis], self.num_devices)
      shape = (*x.shape[:batch_axis], self.num_devices, -1, *x.shape[batch_axis + 1:])
      return jax.device_put(np.moveaxis(x.reshape(shape), batch_axis, 0), self._stack)
    return jax.tree.map(split, batch)

  def compile(self, fn: Callable, *, donate_argnums: tuple[int, ...] = (), per_example_out: bool = False
              ) -> Callable:
    """`fn(*args, axis_name=...)` mapped over every process's devices; arguments and outputs are
    per-device (`per_example_out` is JitBackend's)."""
    del per_example_out
    return jax.pmap(functools.partial(fn, axis_name=AXIS), axis_name=AXIS,
                    devices=self.global_devices, donate_argnums=donate_argnums)


class JitBackend:
  """Global arrays: state replicated over a 1-D mesh of every process's devices, batches
  sharded along AXIS (process p's devices hold its rows, `process_slice`)."""

  name = "jit"

  def __init__(self, devices: Sequence[jax.Device], global_devices: Sequence[jax.Device] | None = None):
    self.devices = list(devices)
    self.num_devices = len(self.devices)  # local devices: the host's batch splits over these
    mesh = Mesh(np.array(list(global_devices or devices)), (AXIS,))
    self._replicated = NamedSharding(mesh, P())
    self._sharded = NamedSharding(mesh, P(AXIS))

  def replicate(self, tree: Any) -> Any:
    """`tree` (the same in every process) on every device, in fresh buffers: a donated step
    must not free the caller's arrays (device_put may alias them)."""
    return jax.tree.map(lambda x: _global_replica(x, self._replicated), tree)

  def unreplicate(self, tree: Any) -> Any:
    """This process's copy, on its first device: readable with `jax.device_get` on any host.

    It shares the replica's buffers: read it before the replica is donated to the next step.
    """
    return jax.tree.map(_local_copy, tree)

  def shard_batch(self, batch: dict, batch_axis: int = 0) -> dict:
    """A global array whose axis `batch_axis` is split over the mesh; `batch` is this process's rows."""
    sharding = NamedSharding(self._sharded.mesh, P(*([None] * batch_axis), AXIS))
    def put(x):
      x = np.asarray(x)
      _check_split(x.shape[batch_axis], self.num_devices)
      return jax.make_array_from_process_local_data(sharding, x)
    return jax.tree.map(put, batch)

  def compile(self, fn: Callable, *, donate_argnums: tuple[int, ...] = (), per_example_out: bool = False
              ) -> Callable:
    """`fn(*args, axis_name=None)` jitted; outputs replicated (metrics are scalars), or with
    `per_example_out` left split like the batch (per-example arrays fed to the next call)."""
    return jax.jit(functools.partial(fn, axis_name=None), donate_argnums=donate_argnums,
                   out_shardings=None if per_example_out else self._replicated)


Backend = PmapBackend | JitBackend


def _select_devices(num_devices: int) -> tuple[list[jax.Device], list[jax.Device]]:
  """(this process's, every process's) first `num_devices` devices per process (0 = all).

  Every process must contribute as many devices: each feeds an equal slice of the batch.
  """
  per_process = [jax.local_devices(process_index=p) for p in range(jax.process_count())]
  fewest = min(len(d) for d in per_process)
  if num_devices > fewest:
    raise UserError(f"num_devices={num_devices} but only {fewest} devices are available"
                    f"{' in some process' if len(per_process) > 1 else ''}; "
                    "set --config.num_devices=0 to use all")
  if not num_devices and len({len(d) for d in per_process}) > 1:
    counts = ", ".join(str(len(d)) for d in per_process)
    raise UserError(f"the processes have different numbers of devices ({counts}); set "
                    f"--config.num_devices to at most {fewest} to use as many in each")
  n = num_devices or fewest
  chosen = [d[:n] for d in per_process]
  return chosen[jax.process_index()], [d for devices in chosen for d in devices]


def make_backend(name: str, num_devices: int = 0) -> Backend:
  """The backend `name` over the first `num_devices` devices of each process (0 = all)."""
  if name not in BACKENDS:
    raise UserError(f"unknown parallel backend {name!r}; valid: {', '.join(BACKENDS)}")
  local, every = _select_devices(num_devices)
  return (PmapBackend if name == "pmap" else JitBackend)(local, every)
