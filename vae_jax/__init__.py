"""vae_jax: variational autoencoders for images in JAX/Flax.

Start at `trainer.train_and_evaluate` (what train.py runs), `inference.load_trained`
(what sample.py runs), `losses` (the ELBO and the loss registry) and `model` (the VAE).
"""

__version__ = "0.1.0"
