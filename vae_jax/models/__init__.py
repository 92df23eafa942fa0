"""Latent-variable models, one file each, chosen by `config.model.name`.

See `base.py` for the contract. To add one: a file with a `LatentModel`
subclass, and its line below.
"""

from vae_jax.models.base import (MODELS, Generated, Inference, LatentGroup, LatentModel)
from vae_jax.models.dcgan import DCGAN
from vae_jax.models.hvae import HVAE
from vae_jax.models.ladder import Ladder
from vae_jax.models.vae import VAE

MODELS.register("vae")(VAE)
MODELS.register("ladder")(Ladder)
MODELS.register("hvae")(HVAE)
MODELS.register("dcgan")(DCGAN)

__all__ = ["MODELS", "Generated", "Inference", "LatentGroup", "LatentModel", "VAE", "Ladder", "HVAE", "DCGAN"]
