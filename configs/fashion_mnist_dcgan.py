"""Fashion-MNIST with the mnist_dcgan model."""

from configs import mnist_dcgan


def get_config():
  c = mnist_dcgan.get_config()
  c.data.name = "fashion_mnist"
  return c
