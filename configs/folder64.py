"""Any folder of images (PNG/JPEG, any sizes), resized and centre-cropped to 64x64 RGB.

  python train.py --config configs/folder64.py --config.data.dir=/path/to/images --workdir runs/art
"""

from configs import cifar10_conv


def get_config():
  c = cifar10_conv.get_config()
  c.data.name = "folder"
  c.data.dir = ""  # required: set --config.data.dir
  c.data.image_size = 64
  c.data.channels = 3
  c.model.channels = (32, 64, 128, 256)
  c.model.latent_dim = 128
  return c
