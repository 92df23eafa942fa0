"""What a figure was measured on, for the records that carry speeds or wall times.

`describe()` gives the JAX devices and, on a CPU, the processor: "1 x cpu (AMD EPYC, family 23
model 1, 2 cores)". Hosts that share a name can differ twofold in speed (Zen 1 runs 256-bit AVX2
at half the rate of later cores), so the family and model numbers are kept.
"""

from __future__ import annotations

import os
import platform

import jax


def cpu_model(cpuinfo: str) -> str:
  """The first processor's `model name, family F model M` in the text of /proc/cpuinfo ("" if absent)."""
  fields = {}
  for line in cpuinfo.splitlines():
    if not line.strip():
      break  # the first processor's block ends at the first blank line
    key, _, value = line.partition(":")
    fields[key.strip()] = value.strip()
  name = fields.get("model name", "")
  if name and "cpu family" in fields and "model" in fields:
    return f"{name}, family {fields['cpu family']} model {fields['model']}"
  return name


def _read_cpuinfo() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return f.read()
  except OSError:
    return ""


def describe() -> str:
  """`N x kind` of the JAX devices, and on a CPU `(processor, C cores)` after it."""
  devices = jax.devices()
  text = f"{len(devices)} x {devices[0].device_kind}"
  if devices[0].platform != "cpu":
    return text
  name = cpu_model(_read_cpuinfo()) or platform.processor() or platform.machine()
  return f"{text} ({name}, {os.cpu_count()} cores)"
