"""The `gan` loss: the non-saturating GAN objective (Goodfellow et al. 2014), with an optional R1 penalty.

With D(x) = sigmoid(d(x)) the discriminator's probability that x is real,
x_r a training batch and x_g = G(z) a batch of samples,

  discriminator:  L_D = E[softplus(-d(x_r))] + E[softplus(d(x_g))]          (= -log D(x_r) - log(1 - D(x_g)))
                        + gamma / 2 E[||grad_x d(x_r)||^2]                 (R1, Mescheder et al. 2018)
  generator:      L_G = E[softplus(-d(x_g))]                               (= -log D(x_g), non-saturating)

Both are minimised by one optimizer step on one scalar,
L_D(theta_D, stop_grad(theta_G)) + L_G(stop_grad(theta_D), theta_G): its
gradient with respect to the discriminator's parameters is that of L_D and
with respect to the generator's that of L_G, so the two networks take
simultaneous steps from the same point (Mescheder et al. 2017's "SimGD";
DCGAN alternated them). Adam's moments are per parameter, so one Adam over
both networks equals one per network with the same settings.

Metrics: `d_loss` (without R1), `g_loss`, `d_real` and `d_fake` (mean D on
real and generated images: both near 0.5 at equilibrium, `d_real` near 1 and
`d_fake` near 0 when the discriminator wins), `r1`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vae_jax import losses
from vae_jax import model as model_lib


def _discriminate(params, x_BHWC: jax.Array, *, model) -> jax.Array:
  return model.apply({"params": params}, x_BHWC, method=model.discriminate)


def _with_frozen(params: dict, frozen: str) -> dict:
  """params with the subtree `frozen` ("generator" or "discriminator") behind stop_gradient."""
  return {k: jax.lax.stop_gradient(v) if k == frozen else v for k, v in params.items()}


def r1_penalty(params, x_BHWC: jax.Array, *, model) -> jax.Array:
  """||grad_x d(x)||^2 per example [B], at real images."""
  grad = jax.grad(lambda x: jnp.sum(_discriminate(params, x, model=model)))(x_BHWC)
  return jnp.sum(grad.reshape(grad.shape[0], -1) ** 2, axis=1)


@losses.LOSSES.register("gan")
def gan_loss(params, batch, rng, step, *, model, config):
  """L_D + L_G as in the module doc; `config.gan_r1_gamma` > 0 adds the R1 penalty."""
  del step
  data_keys, z_keys = losses.split_keys(rng)
  x_real = model_lib.model_input(batch["image"], data_keys, model=model)
  x_fake = model_lib.generate(params, z_keys, model=model).p_x.mean
  d_params = _with_frozen(params, "generator")
  d_real = _discriminate(d_params, x_real, model=model)
  d_fake = _discriminate(d_params, jax.lax.stop_gradient(x_fake), model=model)
  d_for_g = _discriminate(_with_frozen(params, "discriminator"), x_fake, model=model)
  d_loss_B = jax.nn.softplus(-d_real) + jax.nn.softplus(d_fake)
  g_loss_B = jax.nn.softplus(-d_for_g)
  metrics = {"d_loss": losses.batch_mean(d_loss_B, batch), "g_loss": losses.batch_mean(g_loss_B, batch),
             "d_real": losses.batch_mean(jax.nn.sigmoid(d_real), batch),
             "d_fake": losses.batch_mean(jax.nn.sigmoid(d_fake), batch)}
  loss = metrics["d_loss"] + metrics["g_loss"]
  if config.gan_r1_gamma > 0:
    metrics["r1"] = losses.batch_mean(r1_penalty(d_params, x_real, model=model), batch)
    loss = loss + 0.5 * config.gan_r1_gamma * metrics["r1"]
  return loss, metrics
