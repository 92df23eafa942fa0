"""CIFAR-10 (32x32 RGB), conv VAE with a Gaussian likelihood on dequantised pixels.

The per-channel standard deviation is learned (sigma-VAE), which balances
reconstruction against KL without a hand-tuned beta.
"""

from configs import mnist_conv


def get_config():
  c = mnist_conv.get_config()
  c.data.name = "cifar10"
  c.data.image_size = 32
  c.data.channels = 3
  c.model.channels = (64, 128, 256)
  c.model.latent_dim = 128
  c.model.likelihood = "gaussian"
  c.model.gaussian_std = 0.1
  c.model.learn_std = True
  c.num_train_steps = 50_000
  return c
