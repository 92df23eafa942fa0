"""MNIST, class-conditional VAE: the mnist_mlp model with the digit label as a condition.

The one-hot label is appended to the encoder's input and to z at the
decoder's input, and the prior is N(0, I) for every class (M2's p(z);
`model.class_prior="learned"` gives a learned Gaussian per class instead),
so a digit's code z moves to another class: `sample.py --transfer`.
Sample one digit with `python sample.py --workdir DIR --label 7`, or a grid
whose column j is digit j without --label.
"""

from configs import mnist_mlp


def get_config():
  c = mnist_mlp.get_config()
  c.data.labels = True
  c.model.num_classes = 10
  c.model.class_prior = "standard"  # p(z) = N(0, I): codes transfer between classes
  return c
