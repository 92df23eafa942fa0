"""MNIST, DCGAN (Radford et al. 2016): the GAN baseline of the VAE-vs-GAN report.

Generator 100 -> 7x7x128 -> 14x14x64 -> 28x28x1 (transposed convs, layer norm);
discriminator 28x28 -> 14x14x64 -> 7x7x128 -> logit (LeakyReLU 0.2). Adam 2e-4,
beta1 0.5, batch 64, the non-saturating loss (vae_jax/gan_loss.py). Evaluated
by sample quality with the dataset's judge (trained on first use, then cached):

  python train.py --config mnist_dcgan --config.data.dir=../shared/data/mnist --workdir runs/mnist_dcgan
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.data.name = "mnist"
  c.data.image_size = 28
  c.data.channels = 1
  c.data.binarize = False
  c.model.name = "dcgan"
  c.model.latent_dim = 100
  c.model.gan_width = 64
  c.model.gan_norm = "layer"
  c.loss = "gan"
  c.gan_r1_gamma = 0.0
  c.optimizer = "adam"
  c.learning_rate = 2e-4
  c.adam_b1 = 0.5
  c.batch_size = 64
  c.steps_per_call = 1  # convolutions: one step per call on XLA:CPU (train_step.train_steps)
  c.num_train_steps = 20_000
  c.evaluators = ("loss", "fid", "precision_recall", "class_coverage")
  c.quality.num_samples = 5000
  c.eval_every = c.sample_every = c.checkpoint_every = 2000
  return c
