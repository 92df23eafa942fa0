"""Fashion-MNIST with the mnist_conv model."""

from configs import mnist_conv


def get_config():
  c = mnist_conv.get_config()
  c.data.name = "fashion_mnist"
  return c
