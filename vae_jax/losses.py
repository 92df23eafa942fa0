"""Objectives: per-example terms read from the model's latent groups, and a loss registry.

Every loss has one signature,

    loss_fn(params, batch, rng, step, *, model, config) -> (loss, metrics)

where `batch["image"]` is uint8 [B, H, W, C] (and `batch["label"]` int [B]
when the data has labels), `rng` is one PRNG key per example ([B], so draws
do not depend on how a batch is split over devices), `step` the optimizer
step (for schedules), `loss` a scalar to minimise and `metrics` a dict of
scalars. Per-example terms are reduced once, by `batch_mean`, which honours
`batch["mask"]` (evaluation pads its last batch).

The ELBO of one image x with latent groups z_1..z_G (Kingma & Welling 2014):

    log p(x) >= ELBO(x) = E_q[log p(x|z)] - sum_g E_q[KL(q(z_g|.) || p(z_g|z_<g))]

estimated with one reparameterised draw. Metrics are in nats per image:
`recon` = -log p(x|z) (summed over pixels), `kl` (summed over groups; the
closed form where the model gives one, else log q - log p at the draw),
`kl_g0`, `kl_g1`, ... per group (generative order, 0 = top) when there are
several, `neg_elbo` = recon + kl, `elbo` = -neg_elbo, and `bits_per_dim`.

The importance-weighted bound (Burda et al. 2016) with k samples:

    log p(x) >= L_k(x) = E[log 1/k sum_i p(x, z_i) / q(z_i|x)],  L_1 = ELBO <= L_k <= log p(x)

Missing data. When the batch has "observed" masks (`data.missing`), every
loss here scores only the observed pixels: log p(x|z) becomes log p(x_o|z),
and the encoder sees x with the missing pixels at 0. The importance-weighted
bound on x_o is then MIWAE (Mattei & Frellsen 2019),

    log p(x_o) >= E[log 1/k sum_i p(x_o|z_i) p(z_i) / q(z_i|x_o)],

registered as `miwae` (the same function as `iwae`: on complete data the two are equal).

A loss of your own is a function with the signature above in your own module,
named in the config as ``--config.loss=my_pkg.my_losses:my_loss``; it can reuse
`elbo_terms`, `elbo_metrics` and `batch_mean`.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import model as model_lib
from vae_jax.models import Inference
from vae_jax.models.base import observed_log_prob
from vae_jax.registry import Registry

LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
LOSSES: Registry[LossFn] = Registry("loss")


def batch_mean(values_B: jax.Array, batch: dict) -> jax.Array:
  """Mean over the batch's real examples: all of them, or those with batch["mask"] set."""
  if "mask" not in batch:
    return jnp.mean(values_B)
  mask = batch["mask"].astype(values_B.dtype)
  return jnp.sum(values_B * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def split_keys(rng_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Each example's key -> (its input-transform key, its latent key): one split, as always."""
  keys_B2 = jax.vmap(lambda k: jax.random.split(k, 2))(rng_B)
  return keys_B2[:, 0], keys_B2[:, 1]


def posterior(params, batch: dict, rng_B: jax.Array, *, model) -> tuple[jax.Array, object, jax.Array]:
  """(x, encoder context, latent keys): the model input and the draw-free part of inference.

  With batch["observed"], x is 0 at the missing pixels (zero imputation, as in MIWAE).
  """
  data_keys, latent_keys = split_keys(rng_B)
  x = model_lib.model_input(batch["image"], data_keys, model=model)
  if "observed" in batch:
    x = x * batch["observed"].astype(x.dtype)
  context = model_lib.encode(params, x, model=model, y=batch.get("label"))
  return x, context, latent_keys


def terms_from_inference(x: jax.Array, inference: Inference,
                         observed: jax.Array | None = None) -> dict[str, jax.Array]:
  """Per-example ELBO terms [B] of one posterior draw (recon over the `observed` pixels if given)."""
  recon_B = -observed_log_prob(inference.p_x, x, observed)
  kls = [g.kl_or_estimate() for g in inference.groups]
  terms = {"recon": recon_B, "kl": sum(kls), "neg_elbo": recon_B + sum(kls)}
  if len(kls) > 1:
    terms.update({f"kl_g{g}": kl for g, kl in enumerate(kls)})
  return terms


def elbo_terms(params, batch: dict, rng: jax.Array, *, model,
               config: ml_collections.ConfigDict | None = None) -> dict[str, jax.Array]:
  """Per-example ELBO terms, each [B], in nats: recon = -log p(x|z), kl (and per group), neg_elbo."""
  del config
  x, context, latent_keys = posterior(params, batch, rng, model=model)
  inference = model_lib.infer(params, context, latent_keys, model=model, y=batch.get("label"))
  return terms_from_inference(x, inference, batch.get("observed"))


def elbo_metrics(terms: dict[str, jax.Array], batch: dict, *, model) -> dict[str, jax.Array]:
  """Batch means of the per-example terms, plus elbo and bits/dim (the likelihood's conversion)."""
  metrics = {k: batch_mean(v, batch) for k, v in terms.items()}
  metrics["elbo"] = -metrics["neg_elbo"]
  num_dims = math.prod(batch["image"].shape[1:])
  metrics["bits_per_dim"] = model.likelihood.nats_to_bits_per_dim(metrics["neg_elbo"], num_dims)
  return metrics


def kl_weight(step: jax.Array, *, beta: float, warmup_steps: int) -> jax.Array:
  """beta_t = beta * min(1, step / warmup_steps): linear KL warm-up (Bowman et al. 2016)."""
  if warmup_steps <= 0:
    return jnp.asarray(beta, jnp.float32)
  return beta * jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / warmup_steps)


def kl_penalty(metrics: dict[str, jax.Array], free_bits: float) -> jax.Array:
  """sum_g max(free_bits, KL_g), with KL_g the batch mean of group g (Kingma et al. 2016); free_bits=0: KL."""
  if free_bits <= 0:
    return metrics["kl"]
  per_group = [v for k, v in metrics.items() if k.startswith("kl_g")] or [metrics["kl"]]
  return sum(jnp.maximum(free_bits, kl) for kl in per_group)


@LOSSES.register("elbo")
def elbo_loss(params, batch, rng, step, *, model, config):
  """-ELBO, mean over the batch: the maximum-likelihood objective (beta = 1, no warm-up).

  With `kl_free_bits` > 0, each group's batch-mean KL below that many nats is not penalised.
  """
  del step
  metrics = elbo_metrics(elbo_terms(params, batch, rng, model=model), batch, model=model)
  if config.kl_free_bits > 0:
    return metrics["recon"] + kl_penalty(metrics, config.kl_free_bits), metrics
  return metrics["neg_elbo"], metrics


@LOSSES.register("beta_elbo")
def beta_elbo_loss(params, batch, rng, step, *, model, config):
  """E_q[-log p(x|z)] + beta_t KL(q(z|x) || p(z)) (Higgins et al. 2017), with warm-up and free bits.

  beta > 1 favours a factorised latent code; beta < 1 favours reconstructions.
  `metrics["neg_elbo"]` stays the true (beta = 1) bound.
  """
  metrics = elbo_metrics(elbo_terms(params, batch, rng, model=model), batch, model=model)
  beta_t = kl_weight(step, beta=config.beta, warmup_steps=config.kl_warmup_steps)
  metrics["beta"] = beta_t
  return metrics["recon"] + beta_t * kl_penalty(metrics, config.kl_free_bits), metrics


def log_weights(params, batch: dict, rng_B: jax.Array, samples_S: jax.Array, *,
                model) -> tuple[jax.Array, jax.Array]:
  """(x, log w [S, B]): log p(x, z_s) - log q(z_s | x) for the importance samples s in `samples_S`.

  The encoder runs once; sample s draws every group from its own noise
  streams, so sample 0 is the ELBO's draw and samples are independent.
  """
  x, context, latent_keys = posterior(params, batch, rng_B, model=model)
  return x, log_weights_given(params, batch, (x, context, latent_keys), samples_S, model=model)


def log_weights_given(params, batch: dict, encoded: tuple, samples_S: jax.Array, *, model) -> jax.Array:
  """log w [S, B] for the samples in `samples_S`, given `posterior(params, batch, rng_B)` = `encoded`.

  Lets a caller that draws many chunks of samples for one batch (is_nll) run the encoder once.
  """
  x, context, latent_keys = encoded
  y = batch.get("label")

  def one(s):
    inference = model_lib.infer(params, context, latent_keys, model=model, y=y, sample=s)
    return inference.log_weight(x, batch.get("observed"))
  return jax.vmap(one)(samples_S)


@LOSSES.register("miwae")
@LOSSES.register("iwae")
def iwae_loss(params, batch, rng, step, *, model, config):
  """-L_k, the importance-weighted bound with k = `iwae_k` samples (Burda et al. 2016), batch mean.

  Metrics: `neg_iwae` = -L_k and `neg_elbo` = the mean over the k samples of
  -log w, an ELBO estimate from the same draws; both nats per image.
  """
  del step
  k = config.iwae_k
  _, log_w_SB = log_weights(params, batch, rng, jnp.arange(k), model=model)
  bound_B = jax.nn.logsumexp(log_w_SB, axis=0) - math.log(k)
  neg_iwae = -batch_mean(bound_B, batch)
  neg_elbo = -batch_mean(jnp.mean(log_w_SB, axis=0), batch)
  num_dims = math.prod(batch["image"].shape[1:])
  metrics = {"neg_iwae": neg_iwae, "neg_elbo": neg_elbo, "elbo": -neg_elbo,
             "bits_per_dim": model.likelihood.nats_to_bits_per_dim(neg_elbo, num_dims)}
  return neg_iwae, metrics


def get_loss_fn(config: ml_collections.ConfigDict) -> LossFn:
  """The loss named by `config.loss`: a registered name or 'module:function'."""
  return LOSSES.get(config.loss)


from vae_jax import gan_loss  # noqa: E402,F401  registers "gan" (it builds on batch_mean and split_keys)
