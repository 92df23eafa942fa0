"""CIFAR-10 (32x32 RGB), the VDVAE-style hierarchy with a discretized logistic mixture (10 components).

Resolutions 32, 16, 8, 4 with 2, 3, 4, 4 top-down blocks (13 latent groups), width 64; EMA and
update skipping. Meant for an accelerator.
"""

from configs import mnist_hvae


def get_config():
  c = mnist_hvae.get_config()
  c.data.name = "cifar10"
  c.data.image_size = 32
  c.data.channels = 3
  c.model.likelihood = "dlm"
  c.model.dlm_mixtures = 10
  c.model.resolutions = (32, 16, 8, 4)
  c.model.widths = (64, 64, 64, 64)
  c.model.blocks_per_res = (2, 3, 4, 4)
  c.model.enc_blocks_per_res = (1, 1, 2, 2)
  c.model.z_channels = 8
  c.num_train_steps = 200_000
  c.eval_every = c.sample_every = c.checkpoint_every = 10_000
  return c
