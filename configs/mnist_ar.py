"""MNIST, a VAE with a locally autoregressive Bernoulli likelihood (`ar_bernoulli`).

The `mnist_mlp` encoder and decoder (784-500-ReLU-2x20, 20-500-ReLU), the
decoder giving 4 feature maps per pixel; each pixel's Bernoulli conditions on
them and on its causal 7x7 window (the 3 rows above, 3 pixels to its left) by
one 32-unit layer. Dynamic binarisation; Adam 1e-3 with cosine decay to 0,
batch 128. During training, IS-NLL with k=1000 on the first 1000 test images
gives a cheap curve; evaluate the run on the full test set with
`python -m vae_jax.evaluate --workdir DIR --metrics is_nll,elbo --k 5000 --batch_size 25 --chunk 4`.
"""

from configs import mnist_mlp


def get_config():
  c = mnist_mlp.get_config()
  c.model.likelihood = "ar_bernoulli"
  c.model.ar_features = 4
  c.model.ar_kernel = 7
  c.model.ar_hidden = 32
  c.model.ar_depth = 1
  c.lr_schedule = "cosine"
  c.num_train_steps = 160_000     # 341 epochs
  c.evaluators = ("loss", "is_nll")
  c.is_nll_k = 1000
  c.is_nll_num_examples = 1000
  # 25 images x 4 samples per call keeps each [images x pixels, ar_hidden] array near 10 MB: on
  # XLA:CPU, 50 MB and larger ones ran at a fifth of the speed (fresh pages for every buffer).
  c.eval_batch_size = 25
  c.is_nll_chunk = 4
  c.eval_every = c.sample_every = 20_000
  c.checkpoint_every = 10_000
  return c
