"""MNIST with a conv encoder/decoder (stride-2 convs; pixel-shuffle upsampling)."""

from configs import mnist_mlp


def get_config():
  c = mnist_mlp.get_config()
  c.model.encoder = c.model.decoder = "conv"
  c.model.channels = (32, 64)
  c.model.kernel = 4
  c.model.latent_dim = 20
  return c
