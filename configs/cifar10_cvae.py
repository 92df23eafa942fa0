"""CIFAR-10 (TFDS), class-conditional: the cifar10_conv model with the label as a condition.

Sample one class with `python sample.py --workdir DIR --label 3` (3 = cat), or
a grid whose column j is class j without --label; `--transfer` draws test
images in every other class.
"""

from configs import cifar10_conv


def get_config():
  c = cifar10_conv.get_config()
  c.data.labels = True
  c.model.num_classes = 10
  return c
