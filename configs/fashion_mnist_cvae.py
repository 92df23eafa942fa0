"""Fashion-MNIST, class-conditional VAE: the mnist_cvae model on Fashion-MNIST's ten garment classes.

Sample one class with `python sample.py --workdir DIR --label 7` (7 = sneaker),
or a grid whose column j is class j without --label.
"""

from configs import mnist_cvae


def get_config():
  c = mnist_cvae.get_config()
  c.data.name = "fashion_mnist"
  return c
