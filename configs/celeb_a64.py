"""CelebA faces, centre-cropped and resized to 64x64 RGB (downloaded with TFDS)."""

from configs import folder64


def get_config():
  c = folder64.get_config()
  c.data.name = "celeb_a"
  return c
