"""Any folder of images at 64x64 RGB, the VDVAE-style hierarchy with a discretized logistic mixture.

  python train.py --config configs/folder64_hvae.py --config.data.dir=/path/to/images --workdir runs/art
"""

from configs import cifar10_hvae


def get_config():
  c = cifar10_hvae.get_config()
  c.data.name = "folder"
  c.data.dir = ""  # required: set --config.data.dir
  c.data.image_size = 64
  c.model.resolutions = (64, 32, 16, 8, 4)
  c.model.widths = (32, 64, 64, 64, 64)
  c.model.blocks_per_res = (1, 2, 3, 4, 4)
  c.model.enc_blocks_per_res = (1, 1, 1, 2, 2)
  return c
