"""vae_jax/hardware.py: the processor named in evaluation records."""

import os
import re

import jax

from vae_jax import hardware

# Two processors as Linux lists them; only the first one's block counts.
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 2

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: Another CPU
"""


def test_cpu_model_reads_the_first_processor_block():
  assert hardware.cpu_model(CPUINFO) == "AMD EPYC, family 23 model 1"
  # No family or model (e.g. some ARM kernels): the name alone; nothing at all: "".
  assert hardware.cpu_model("model name\t: Neoverse\n") == "Neoverse"
  assert hardware.cpu_model("") == ""


def test_describe_names_the_devices_and_on_cpu_the_processor_and_cores():
  text = hardware.describe()
  devices = jax.devices()
  assert text.startswith(f"{len(devices)} x {devices[0].device_kind}")
  if devices[0].platform == "cpu":
    assert text.endswith(f", {os.cpu_count()} cores)")
    if os.path.exists("/proc/cpuinfo"):
      with open("/proc/cpuinfo") as f:
        first = f.read().split("\n\n")[0]
      name = re.search(r"^model name\s*:\s*(.*)$", first, re.M)
      if name:
        assert f"({name.group(1).strip()}" in text
