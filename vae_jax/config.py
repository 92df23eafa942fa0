"""The configuration schema: every key, its default and its type, and validation.

`base_config()` is the offline default (procedural shapes, an MLP VAE, a few
minutes on a laptop CPU). Files in `configs/` start from it and override;
`validate` turns an out-of-range value into one clear error line.
"""

from __future__ import annotations

import ml_collections

from vae_jax import stability
from vae_jax.errors import UserError


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                  # the only seed: params init, data order, every draw
  c.num_train_steps = 3000
  c.batch_size = 128          # global: summed over devices (and hosts)
  c.eval_batch_size = 500     # global
  c.parallel = "jit"          # "jit" (NamedSharding) or "pmap"; same results
  c.num_devices = 0           # 0: all local devices
  c.steps_per_call = 10       # train steps per jitted call (lax.scan): fewer dispatches
  c.xla_cpu_loop_unrolling = True  # False: vectorises conv activations on XLA:CPU (vae_jax/xla_cpu.py)
  c.max_train_s = 0.0         # > 0: end the run (final evaluation and grids) after this many seconds
                              # of training steps in this process (a wall-clock budget; one process)

  # Objective (vae_jax/losses.py): a registered name or "package.module:function".
  c.loss = "elbo"             # "elbo", "beta_elbo" or "iwae"
  c.beta = 1.0                # KL weight of beta_elbo
  c.kl_warmup_steps = 0       # beta_elbo: beta grows linearly from 0 over these steps
  c.kl_free_bits = 0.0        # elbo/beta_elbo: nats per latent group not penalised (batch mean; 0 = off)
  c.iwae_k = 5                # iwae: importance samples per example
  c.gan_r1_gamma = 0.0        # gan: weight of the R1 penalty on the discriminator (0 = off)

  # Evaluation (vae_jax/evaluators/): run at eval_every and at the end, on the whole test split.
  c.evaluators = ("loss",)    # loss (the configured objective), elbo, is_nll, active_units
  c.is_nll_k = 1000           # is_nll: importance samples per example
  c.is_nll_chunk = 10         # is_nll: samples per jitted call (bounds memory; conv configs: 1)
  c.is_nll_num_examples = 0   # is_nll: the first N test examples (0 = all), for cheap curves
  c.active_units_threshold = 0.01  # active_units: Cov_x(E_q[z_u]) above this counts (Burda et al.)

  # Sample quality (vae_jax/evaluators/sample_quality.py): fid, kid, precision_recall, class_coverage.
  c.quality = ml_collections.ConfigDict()
  c.quality.features = "judge"   # judge (the dataset's classifier, trained on first use) or inception
  c.quality.judge_dir = ""       # "" = the dataset's cache folder ($VAE_JAX_CACHE/judges/...)
  c.quality.judge_steps = 4000   # the training steps of a judge trained on first use
  c.quality.num_samples = 10000  # generated images per evaluation
  c.quality.mode = "mean"        # mean: the likelihood's mean (as displayed); sample: drawn from p(x|z)
  c.quality.temperature = 1.0
  c.quality.kid_subsets = 100
  c.quality.kid_subset_size = 1000
  c.quality.pr_k = 3             # precision/recall: the k of the k-NN balls (Kynkaanniemi et al.)

  # Optimizer (vae_jax/train_step.py).
  c.optimizer = "adam"        # adam, adamw, sgd
  c.learning_rate = 1e-3
  c.lr_schedule = "constant"  # constant or cosine (with lr_warmup_steps)
  c.lr_warmup_steps = 0
  c.weight_decay = 0.0        # adamw only
  c.adam_b1 = 0.9             # adam/adamw moment decays (DCGAN: b1 = 0.5)
  c.adam_b2 = 0.999
  c.grad_clip_norm = 0.0      # 0: no clipping
  c.log_grad_norm = False     # log the global gradient norm (cost 3-11% of an MNIST MLP CPU step)

  # Stability (vae_jax/stability.py).
  c.ema_decay = 0.0           # > 0: keep an EMA of the params; evaluation and sampling use it
  c.skip_updates = False      # skip updates whose gradient norm is non-finite or a spike
  c.skip_window = 200         # the running quantile is over the last this many finite norms
  c.skip_quantile = 0.9
  c.skip_factor = 5.0         # skip when norm > factor x quantile (once the window is full)
  c.max_consecutive_skips = 100  # then stop with one line

  # Book-keeping (vae_jax/trainer.py).
  c.log_every = 100
  c.eval_every = 1000         # evaluation on the whole test split; always at the end too
  c.sample_every = 1000       # PNG grids of samples and reconstructions; always at the end too
  c.checkpoint_every = 1000   # always at the end too
  c.keep_checkpoints = 3
  c.num_grid_images = 64
  c.progress_bar = True
  c.tensorboard = False       # also write TensorBoard event files to DIR/tensorboard (needs tensorboardX)

  c.data = ml_collections.ConfigDict()
  c.data.name = "shapes"      # shapes, mnist, fashion_mnist, cifar10, celeb_a, folder
  c.data.dir = ""             # local data instead of a TFDS download (see README)
  c.data.tfds_data_dir = ""   # TFDS data_dir; "" = TFDS default
  c.data.image_size = 28
  c.data.channels = 1
  c.data.test_fraction = 0.05  # folder: held-out share
  c.data.skip_bad_images = False  # folder: leave out unreadable images (one warning) instead of stopping
  c.data.num_train_examples = 0  # 0: all
  c.data.num_test_examples = 0   # 0: all
  c.data.shapes_num_train = 20000
  c.data.shapes_num_test = 2000
  c.data.labels = False       # yield class labels (IDX label files, TFDS labels, folder subdirectories)
  c.data.missing = ""         # missing pixels (data/missing.py): "" complete, "mcar" at a rate, "block"
  c.data.missing_rate = 0.5   # mcar: probability that a pixel is missing
  c.data.missing_block = 14   # block: side of the missing square
  c.data.missing_seed = 0     # the masks' seed: fixed per (split, example), the same for every run
  c.data.augment_flip = False  # training images mirrored left-right with probability 1/2 (data/augment.py)
  c.data.augment_crop = 0     # > 0: training images shifted by up to this many pixels (reflect-padded crops)
  c.data.binarize = True      # Bernoulli likelihood: dynamic binarisation
  c.data.dequantize = True    # Gaussian likelihood: uniform dequantisation

  c.model = ml_collections.ConfigDict()
  c.model.name = "vae"        # vae (one latent group), ladder or hvae (or "package.module:Class")
  c.model.num_classes = 0     # > 0: conditional on the class label (needs data.labels=True)
  c.model.class_prior = "learned"  # conditional VAE's p(z|y): "learned" per class, or "standard" N(0, I)
                                   # (M2's p(z): z keeps no class, so codes transfer between classes)
  c.model.encoder = "mlp"     # vae: mlp or conv (or "package.module:Class")
  c.model.decoder = "mlp"
  c.model.latent_dim = 10
  c.model.hidden = (256,)     # mlp widths
  c.model.channels = (32, 64)  # conv widths, encoder order; each halves the resolution
  c.model.kernel = 4
  c.model.upsample = "pixel_shuffle"  # conv decoder: pixel_shuffle, transpose, resize
  c.model.likelihood = "bernoulli"    # bernoulli, ar_bernoulli, gaussian or dlm (or "package.module:Class")
  c.model.gaussian_std = 0.1
  c.model.learn_std = False
  c.model.dlm_mixtures = 10           # dlm: logistic components per pixel
  c.model.ar_features = 4             # ar_bernoulli: decoder maps per pixel that condition it
  c.model.ar_kernel = 7               # ar_bernoulli: causal window of a k x k neighbourhood (odd)
  c.model.ar_hidden = 32              # ar_bernoulli: width of its per-pixel layers
  c.model.ar_depth = 1                # ar_bernoulli: number of those layers
  c.model.latent_dims = (100, 50)     # ladder: latent sizes, bottom (z_1) to top (z_L)
  c.model.layers_per_latent = 2       # ladder: deterministic layers per stochastic layer
  c.model.activation = "tanh"         # ladder: tanh, relu, elu, gelu, swish
  c.model.resolutions = (28, 14, 7)   # hvae: image size first, halving
  c.model.widths = (32, 32, 32)       # hvae: channels per resolution
  c.model.blocks_per_res = (2, 2, 2)  # hvae: top-down blocks (latent groups) per resolution
  c.model.enc_blocks_per_res = (1, 1, 1)  # hvae: bottom-up residual blocks per resolution
  c.model.z_channels = 4              # hvae: channels of each latent group's map
  c.model.gan_width = 64              # dcgan: the discriminator's first width (the generator's last)
  c.model.gan_norm = "layer"          # dcgan: generator normalisation, layer or none
  return c


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise UserError(message)


def validate(c: ml_collections.ConfigDict) -> None:
  """Checks values that types alone do not; raises UserError naming the key and the fix."""
  for key in ("steps_per_call", "num_train_steps", "batch_size", "eval_batch_size", "log_every", "eval_every",
              "sample_every", "checkpoint_every", "keep_checkpoints", "num_grid_images"):
    _require(c[key] >= 1, f"{key} must be >= 1, got {c[key]}; set --config.{key}=N")
  _require(c.num_devices >= 0, f"num_devices must be >= 0, got {c.num_devices}")
  _require(c.learning_rate > 0, f"learning_rate must be > 0, got {c.learning_rate}")
  _require(c.beta >= 0, f"beta must be >= 0, got {c.beta}")
  _require(c.kl_free_bits >= 0, f"kl_free_bits must be >= 0, got {c.kl_free_bits}")
  _require(c.lr_warmup_steps >= 0, f"lr_warmup_steps must be >= 0, got {c.lr_warmup_steps}")
  _require(c.lr_schedule != "cosine" or c.lr_warmup_steps < c.num_train_steps,
           f"lr_warmup_steps ({c.lr_warmup_steps}) must be below num_train_steps ({c.num_train_steps}) "
           "with lr_schedule=cosine, which decays over the steps after the warmup; lower "
           "--config.lr_warmup_steps")
  for problem in stability.validate(c):
    raise UserError(problem)
  _require(c.is_nll_num_examples >= 0, f"is_nll_num_examples must be >= 0, got {c.is_nll_num_examples}")
  for key in ("iwae_k", "is_nll_k", "is_nll_chunk"):
    _require(c[key] >= 1, f"{key} must be >= 1, got {c[key]}; set --config.{key}=N")
  q = c.quality
  _require(q.features in ("judge", "inception"),
           f"quality.features must be judge or inception, got {q.features!r}")
  _require(q.mode in ("mean", "sample"), f"quality.mode must be mean or sample, got {q.mode!r}")
  for key in ("num_samples", "kid_subsets", "kid_subset_size", "pr_k", "judge_steps"):
    _require(q[key] >= 1 + (key == "num_samples"), f"quality.{key} must be >= {1 + (key == 'num_samples')}, "
             f"got {q[key]}; set --config.quality.{key}=N")
  # `data.*` values are checked by vae_jax.data.loading.validate, where they are used.
