"""MNIST, a VDVAE-style hierarchy of conv latent groups (vae_jax/models/hvae.py), Bernoulli pixels.

Resolutions 28, 14, 7 with 2, 3, 4 top-down blocks (9 latent groups of 4-channel maps), width 32
per resolution; an EMA of the parameters (used for evaluation and sampling) and adaptive update
skipping, as VDVAE needs. Adamax-like stability comes from the skipping; Adam 1e-3 with a cosine
schedule. XLA:CPU runs convolutions slowly: on a CPU this is a long run.
"""

from configs import mnist_mlp


def get_config():
  c = mnist_mlp.get_config()
  c.model.name = "hvae"
  c.model.resolutions = (28, 14, 7)
  c.model.widths = (32, 32, 32)
  c.model.blocks_per_res = (2, 3, 4)
  c.model.enc_blocks_per_res = (1, 1, 1)
  c.model.z_channels = 4
  c.ema_decay = 0.999
  c.skip_updates = True
  c.lr_schedule = "cosine"
  c.lr_warmup_steps = 500
  c.grad_clip_norm = 200.0
  c.steps_per_call = 1  # XLA:CPU convolutions are ~10x slower inside a scan loop
  c.is_nll_chunk = 1  # 500 decoder rows per call stay in cache: 2.8x faster than 100 on XLA:CPU
  c.num_train_steps = 50_000
  c.eval_every = c.sample_every = c.checkpoint_every = 5000
  return c
