"""A loss of your own, outside the library: the ELBO with "free bits" per latent dimension.

Each latent dimension's KL below `config.free_bits` nats costs nothing
(Kingma et al. 2016 apply the floor per group of dimensions; the library's
built-in `kl_free_bits` does that per latent group). It keeps the encoder
from collapsing dimensions early in training. Use it with

  python train.py --config examples/mnist_free_bits.py --workdir runs/free_bits

or name it on any config that has a `free_bits` key:
``--config.loss=examples.my_losses:free_bits_elbo``.
"""

import jax.numpy as jnp

from vae_jax import losses
from vae_jax import model as model_lib


def free_bits_elbo(params, batch, rng, step, *, model, config):
  """recon + sum_d max(free_bits, KL_d), per example, then the batch mean (one Gaussian group).

  The metrics are the usual ELBO terms (nats), so runs stay comparable.
  """
  del step
  x, q_z, latent_keys = losses.posterior(params, batch, rng, model=model)  # binarise, encode
  inference = model_lib.infer(params, q_z, latent_keys, model=model)        # z ~ q(z|x), p(x|z)
  recon_B = -inference.p_x.log_prob(x)
  kl_BZ = 0.5 * (jnp.square(q_z.mean) + jnp.exp(q_z.logvar) - 1.0 - q_z.logvar)
  penalty_B = jnp.sum(jnp.maximum(kl_BZ, config.free_bits), axis=-1)
  terms = {"recon": recon_B, "kl": jnp.sum(kl_BZ, axis=-1), "neg_elbo": recon_B + jnp.sum(kl_BZ, axis=-1)}
  metrics = losses.elbo_metrics(terms, batch, model=model)
  return losses.batch_mean(recon_B + penalty_B, batch), metrics
