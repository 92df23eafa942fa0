"""Test setup: four virtual CPU devices, so data parallelism is exercised on any machine."""

import os

# Must happen before jax is imported anywhere in the test session.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
