"""A loss of your own, outside the library: the ELBO with "free bits" (Kingma et al. 2016).

Each latent dimension's KL below `config.free_bits` nats costs nothing, which
keeps the encoder from collapsing dimensions early in training. Use it with

  python train.py --config examples/mnist_free_bits.py --workdir runs/free_bits

or name it on any config that has a `free_bits` key:
``--config.loss=examples.my_losses:free_bits_elbo``.
"""

import math

import jax
import jax.numpy as jnp

from vae_jax import losses, pixels
from vae_jax import model as model_lib


def free_bits_elbo(params, batch, rng, step, *, model, config):
  """recon + sum_d max(free_bits, KL_d), per example, then the batch mean.

  The metrics are the usual ELBO terms (nats), so runs stay comparable.
  """
  del step
  keys_B2 = jax.vmap(lambda k: jax.random.split(k, 2))(rng)
  x = pixels.model_input(batch["image"], keys_B2[:, 0], config=config)
  q_z = model_lib.encode(params, x, model=model)
  p_x = model_lib.decode(params, q_z.sample(keys_B2[:, 1]), model=model)
  recon_B = -p_x.log_prob(x)
  kl_BZ = 0.5 * (jnp.square(q_z.mean) + jnp.exp(q_z.logvar) - 1.0 - q_z.logvar)
  kl_B = jnp.sum(kl_BZ, axis=-1)
  penalty_B = jnp.sum(jnp.maximum(kl_BZ, config.free_bits), axis=-1)
  terms = {"recon": recon_B, "kl": kl_B, "neg_elbo": recon_B + kl_B}
  metrics = losses.elbo_metrics(terms, num_dims=math.prod(batch["image"].shape[1:]), config=config)
  return jnp.mean(recon_B + penalty_B), metrics
