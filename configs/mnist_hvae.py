"""MNIST, a VDVAE-style hierarchy of conv latent groups (vae_jax/models/hvae.py), Bernoulli pixels.

Resolutions 28, 14, 7, width 32 at each: a residual encoder block at each resolution; top-down,
4 latent groups at 7x7 and 3 at 14x14 (7 groups of 4-channel maps), none at 28x28, where the
state is upsampled straight to the Bernoulli logits. An EMA of the parameters (used for
evaluation and sampling) and adaptive update skipping, as VDVAE needs; Adam 1e-3 with a cosine
schedule over 15,000 steps (32 epochs), sized to train in under 2 hours of a 2-core CPU.

Latent groups at 28x28 too (`--config.model.blocks_per_res='(2,3,4)'`, the earlier default) cost
2.4x the training time and 1.8x the IS-NLL time on a 2-core CPU (measured); on an accelerator,
add them back and train longer.
"""

from configs import mnist_mlp


def get_config():
  c = mnist_mlp.get_config()
  c.model.name = "hvae"
  c.model.resolutions = (28, 14, 7)
  c.model.widths = (32, 32, 32)
  c.model.blocks_per_res = (0, 3, 4)
  c.model.enc_blocks_per_res = (1, 1, 1)
  c.model.z_channels = 4
  c.ema_decay = 0.999
  c.skip_updates = True
  c.lr_schedule = "cosine"
  c.lr_warmup_steps = 500
  c.grad_clip_norm = 200.0
  c.steps_per_call = 1  # XLA:CPU convolutions are ~10x slower inside a scan loop
  c.xla_cpu_loop_unrolling = False  # vectorised GELUs: IS-NLL calls ~1/3 shorter (vae_jax/xla_cpu.py)
  c.is_nll_chunk = 1  # 500 decoder rows per call stay in cache: 2.8x faster than 100 on XLA:CPU
  c.num_train_steps = 15_000
  c.eval_every = c.sample_every = 5000
  c.checkpoint_every = 1000
  return c
