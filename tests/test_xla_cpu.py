"""`xla_cpu_loop_unrolling`: when the XLA:CPU option is added, who wins, and that it vectorises."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vae_jax import config as config_lib
from vae_jax import xla_cpu

REPO = Path(__file__).resolve().parents[1]


def _config(unrolling: bool):
  c = config_lib.base_config()
  c.xla_cpu_loop_unrolling = unrolling
  return c


@pytest.fixture
def backend_not_started(monkeypatch):
  """As in a CLI that has read its config before any JAX computation (here JAX may have run)."""
  monkeypatch.setattr(xla_cpu, "_backend_started", lambda: False)


def test_a_config_without_unrolling_appends_the_option_once(backend_not_started):
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  assert xla_cpu.apply(_config(False), env)
  assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=4", xla_cpu.OPTION]
  assert not xla_cpu.apply(_config(False), env)  # a second call adds nothing
  assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=4", xla_cpu.OPTION]


def test_joins_the_users_own_backend_options(backend_not_started):
  env = {"XLA_FLAGS": "--xla_backend_extra_options=xla_cpu_flatten_after_fusion --xla_cpu_enable_fast_math=false"}
  assert xla_cpu.apply(_config(False), env)
  assert env["XLA_FLAGS"] == ("--xla_backend_extra_options=xla_cpu_flatten_after_fusion,"
                              "xla_cpu_disable_loop_unrolling --xla_cpu_enable_fast_math=false")


@pytest.mark.parametrize("env,unrolling", [
    ({}, True),  # the default adds nothing
    ({"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}, True),
    ({"XLA_FLAGS": "--xla_backend_extra_options=a,xla_cpu_disable_loop_unrolling"}, False),  # there already
])
def test_leaves_xla_flags_alone(env, unrolling, backend_not_started):
  before = dict(env)
  assert not xla_cpu.apply(_config(unrolling), env)
  assert env == before


def test_once_jax_has_started_the_environment_is_left_alone(monkeypatch):
  """The option could no longer change this process; added, it would leak into child processes."""
  monkeypatch.setattr(xla_cpu, "_backend_started", lambda: True)
  env = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
  assert not xla_cpu.apply(_config(False), env)
  assert env == {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}


_CLI = """
import os, sys
from jax._src import xla_bridge
which, workdir = sys.argv[1], sys.argv[2]
from vae_jax import inference, trainer
if which == "train":
  import train as cli_module
  sys.argv = ["train.py", "--config", "configs/mnist_hvae.py", "--workdir", workdir]
elif which == "sample":
  import sample as cli_module
  sys.argv = ["sample.py", "--workdir", workdir]
else:
  from vae_jax import evaluate as cli_module
  sys.argv = ["evaluate", "--workdir", workdir, "--metrics", "elbo"]
assert not xla_bridge.backends_are_initialized(), "importing the CLI started JAX"
def stop(*args, **kwargs):  # where the real work would start
  print("XLA_FLAGS=" + os.environ.get("XLA_FLAGS", ""), "started=" + str(xla_bridge.backends_are_initialized()))
  sys.exit(0)
inference.load_trained = trainer.train_and_evaluate = stop
cli_module.main()
"""


@pytest.mark.parametrize("which,unrolling", [("train", False), ("sample", False), ("evaluate", False),
                                             ("evaluate", True)])
def test_the_clis_apply_the_choice_before_jax_starts(tmp_path, which, unrolling):
  """train.py applies its config's choice; sample.py and vae_jax.evaluate the run's saved one."""
  (tmp_path / "config.json").write_text(json.dumps({"xla_cpu_loop_unrolling": unrolling}))
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", _CLI, which, str(tmp_path)], env=dict(env, JAX_PLATFORMS="cpu"),
                       cwd=REPO, check=True, timeout=120, capture_output=True, text=True).stdout
  assert "started=False" in out
  assert (xla_cpu.KEY in out) == (not unrolling)  # train.py reads configs/mnist_hvae.py: False


_KERNEL = """
import sys, jax, jax.numpy as jnp
from vae_jax import config, xla_cpu
c = config.base_config()
c.xla_cpu_loop_unrolling = sys.argv[1] == "on"
xla_cpu.apply(c)
jax.jit(lambda v: jnp.tanh(v * 0.7978846)).lower(jnp.ones((50, 14, 14, 8))).compile()
"""


def _fusion_ir(tmp: Path, unrolling: bool) -> str:
  """The optimised LLVM IR XLA:CPU emits for tanh(c * x) on f32[50,14,14,8], in a fresh process."""
  dump = tmp / str(unrolling)
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_dump_to={dump}")
  subprocess.run([sys.executable, "-c", _KERNEL, "on" if unrolling else "off"], env=env, cwd=REPO,
                 check=True, timeout=120)
  files = sorted(dump.glob("*jit__lambda*fusion*ir-with-opt.ll"))
  if not files:
    pytest.skip("this XLA names its IR dumps differently; the check reads jax 0.10's")
  return "".join(f.read_text() for f in files)


def test_the_option_vectorises_a_fusion_with_a_constant(tmp_path):
  """The reason for the option: with unrolling this fusion's loop has no vector instructions."""
  assert " x float>" not in _fusion_ir(tmp_path, unrolling=True), \
      "this XLA vectorises the fusion without the option: xla_cpu_loop_unrolling may no longer be needed"
  assert " x float>" in _fusion_ir(tmp_path, unrolling=False)
