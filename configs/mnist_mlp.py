"""MNIST, the Flax example's VAE: 784-500-ReLU-2x20 encoder, 20-500-ReLU-784 logits decoder.

Bernoulli likelihood with dynamic binarisation, Adam 1e-3, batch 128.
Reads IDX files from --config.data.dir if set, else downloads with TFDS.
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.data.name = "mnist"
  c.data.image_size = 28
  c.data.channels = 1
  c.model.encoder = c.model.decoder = "mlp"
  c.model.hidden = (500,)
  c.model.latent_dim = 20
  c.model.likelihood = "bernoulli"
  c.learning_rate = 1e-3
  c.batch_size = 128
  c.num_train_steps = 30_000  # 64 epochs
  c.eval_every = 5000
  c.sample_every = 5000
  c.checkpoint_every = 5000
  return c
