"""The offline default: procedural shapes (no download), a small MLP VAE, a few minutes on a CPU."""

from vae_jax.config import base_config


def get_config():
  return base_config()
