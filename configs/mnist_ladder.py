"""MNIST, Burda et al.'s (2016) two-stochastic-layer model, as in their IWAE table.

Inference 784-200-200-(z1: 100) -> 100-100-(z2: 50), tanh; the generative
path mirrors it with a learned p(z1 | z2). Bernoulli likelihood with dynamic
binarisation; Adam 1e-3, batch 128, no schedule. Train with the ELBO (the
default) or the importance-weighted bound: --config.loss=iwae (iwae_k = 5).
Evaluate with `python -m vae_jax.evaluate --workdir DIR --metrics is_nll,elbo --k 5000`.
"""

from configs import mnist_mlp


def get_config():
  c = mnist_mlp.get_config()
  c.model.name = "ladder"
  c.model.latent_dims = (100, 50)  # z1 (bottom), z2 (top)
  c.model.hidden = (200, 100)      # deterministic widths of each stochastic layer
  c.model.layers_per_latent = 2
  c.model.activation = "tanh"
  c.iwae_k = 5
  c.num_train_steps = 48_000       # 102 epochs
  c.eval_every = c.sample_every = c.checkpoint_every = 8_000
  return c
