"""Test setup: four virtual CPU devices, so data parallelism is exercised on any machine.

XLA's backend optimisation is turned off: the tests' models are tiny, so compile
time (about 1 s per random-number kernel at the default level) dominates.
"""

import os

# Must happen before jax is imported anywhere in the test session.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4"
                           " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the session: the test processes and the command-line
# processes they start compile the same tiny programs many times over.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import atexit
  import shutil
  import tempfile
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="vae_jax_test_xla_cache_")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def mnist_dir() -> Path:
  """The original MNIST IDX files beside the checkout, or a clean skip."""
  d = SHARED_DATA / "mnist"
  if not (d / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"MNIST files not present at {d}")
  return d


def tiny_config(**overrides):
  """The default config shrunk to run a few steps in seconds: shapes data, a small MLP."""
  from vae_jax.config import base_config
  c = base_config()
  c.num_train_steps = 30
  c.batch_size = 32
  c.eval_batch_size = 100
  c.log_every = 10
  c.eval_every = 1000
  c.sample_every = 1000
  c.checkpoint_every = 10
  c.num_grid_images = 8
  c.progress_bar = False
  c.data.shapes_num_train = 512
  c.data.shapes_num_test = 150
  c.model.hidden = (32,)
  c.model.latent_dim = 4
  for key, value in overrides.items():
    target = c
    *parents, leaf = key.split(".")
    for p in parents:
      target = target[p]
    target[leaf] = value
  return c


@pytest.fixture(name="tiny_config")
def tiny_config_fixture():
  return tiny_config


def data_config(**overrides):
  """The default config's `data` section (shapes, 28x28x1, small splits) with overrides."""
  from vae_jax.config import base_config
  config = base_config().data
  config.shapes_num_train, config.shapes_num_test = 1000, 100
  assert set(overrides) <= set(config.keys()), f"typo in {overrides}"
  config.update(overrides)
  return config
