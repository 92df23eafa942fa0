"""mnist_mlp trained with the free-bits loss from examples/my_losses.py: a config adds its own key."""

from configs import mnist_mlp


def get_config():
  c = mnist_mlp.get_config()
  c.loss = "examples.my_losses:free_bits_elbo"
  c.free_bits = 0.25  # nats per latent dimension
  return c
