"""MNIST, class-conditional conv VAE: the mnist_conv model with the digit label as a condition.

As `mnist_cvae` (label maps appended to the encoder's input, the one-hot label
appended to z, p(z) = N(0, I) for every class), with conv encoder and decoder.
"""

from configs import mnist_conv


def get_config():
  c = mnist_conv.get_config()
  c.data.labels = True
  c.model.num_classes = 10
  c.model.class_prior = "standard"  # p(z) = N(0, I): codes transfer between classes
  return c
