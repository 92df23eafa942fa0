"""MNIST with a conv encoder/decoder: 3x3 stride-2 convs down, 3x3 conv + pixel shuffle up.

3x3 kernels with pixel-shuffle upsampling were the fastest of the layer choices
measured on XLA:CPU (README, "Results"); transposed convolutions were 2x slower.
"""

from configs import mnist_mlp


def get_config():
  c = mnist_mlp.get_config()
  c.model.encoder = c.model.decoder = "conv"
  c.model.channels = (32, 64)
  c.model.kernel = 3
  c.model.latent_dim = 20
  c.steps_per_call = 1  # XLA:CPU convolutions are ~10x slower inside a scan loop
  c.is_nll_chunk = 1  # 500 decoder rows per call stay in cache: 2.8x faster than 100 on XLA:CPU
  c.num_train_steps = 10_000  # 21 epochs: a CPU run takes minutes, not hours
  return c
