"""Objectives: the ELBO's per-example terms, and a registry of losses built from them.

Every loss has one signature,

    loss_fn(params, batch, rng, step, *, model, config) -> (loss, metrics)

where `batch["image"]` is uint8 [B, H, W, C], `rng` is one PRNG key per example
([B], so draws do not depend on how a batch is split over devices), `step` the
optimizer step (for schedules), `loss` a scalar to minimise and `metrics` a
dict of scalars. Per-example terms are reduced once, by a mean over the batch.

The ELBO of one image x (Kingma & Welling 2014):

    log p(x) >= ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))

estimated with one reparameterised draw z ~ q(z|x). Metrics are in nats per
image: `recon` = -log p(x|z) (summed over pixels), `kl`, `neg_elbo` = recon +
kl, `elbo` = -neg_elbo, and `bits_per_dim`.

A loss of your own is a function with the signature above in your own module,
named in the config as ``--config.loss=my_pkg.my_losses:my_loss``; it can reuse
`elbo_terms` and `elbo_metrics`.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import model as model_lib
from vae_jax import pixels
from vae_jax.registry import Registry

LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
LOSSES: Registry[LossFn] = Registry("loss")


def elbo_terms(params, batch: dict, rng: jax.Array, *, model: model_lib.VAE,
               config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Per-example ELBO terms, each [B], in nats: recon = -log p(x|z), kl, neg_elbo."""
  keys_B2 = jax.vmap(lambda k: jax.random.split(k, 2))(rng)
  x = pixels.model_input(batch["image"], keys_B2[:, 0], config=config)
  q_z = model_lib.encode(params, x, model=model)
  z = q_z.sample(keys_B2[:, 1])
  p_x = model_lib.decode(params, z, model=model)
  recon_B = -p_x.log_prob(x)
  kl_B = q_z.kl_standard_normal()
  return {"recon": recon_B, "kl": kl_B, "neg_elbo": recon_B + kl_B}


def elbo_metrics(terms: dict[str, jax.Array], *, num_dims: int,
                 config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Means over the batch of the per-example terms, plus elbo and bits/dim."""
  metrics = {k: jnp.mean(v) for k, v in terms.items()}
  metrics["elbo"] = -metrics["neg_elbo"]
  metrics["bits_per_dim"] = pixels.nats_to_bits_per_dim(metrics["neg_elbo"], num_dims, config=config)
  return metrics


def kl_weight(step: jax.Array, *, beta: float, warmup_steps: int) -> jax.Array:
  """beta_t = beta * min(1, step / warmup_steps): linear KL warm-up (Bowman et al. 2016)."""
  if warmup_steps <= 0:
    return jnp.asarray(beta, jnp.float32)
  return beta * jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / warmup_steps)


@LOSSES.register("elbo")
def elbo_loss(params, batch, rng, step, *, model, config):
  """-ELBO, mean over the batch: the maximum-likelihood objective (beta = 1, no warm-up)."""
  del step
  terms = elbo_terms(params, batch, rng, model=model, config=config)
  metrics = elbo_metrics(terms, num_dims=math.prod(batch["image"].shape[1:]), config=config)
  return metrics["neg_elbo"], metrics


@LOSSES.register("beta_elbo")
def beta_elbo_loss(params, batch, rng, step, *, model, config):
  """E_q[-log p(x|z)] + beta_t KL(q(z|x) || p(z)) (Higgins et al. 2017), with warm-up.

  beta > 1 favours a factorised latent code; beta < 1 favours reconstructions.
  `metrics["neg_elbo"]` stays the true (beta = 1) bound.
  """
  terms = elbo_terms(params, batch, rng, model=model, config=config)
  metrics = elbo_metrics(terms, num_dims=math.prod(batch["image"].shape[1:]), config=config)
  beta_t = kl_weight(step, beta=config.beta, warmup_steps=config.kl_warmup_steps)
  metrics["beta"] = beta_t
  return metrics["recon"] + beta_t * metrics["kl"], metrics


def get_loss_fn(config: ml_collections.ConfigDict) -> LossFn:
  """The loss named by `config.loss`: a registered name or 'module:function'."""
  return LOSSES.get(config.loss)
