"""Style transfer with a two-code model: a group code shared by a group's images, and a per-image code.

The conditional VAE (`model.num_classes` > 0; Kingma et al. 2014's conditional
analogies) is the two-code model here: the label y is the group code (a
digit's class, a garment type, a folder's subdirectory such as an art style)
and z ~ q(z | x, y) the per-image code, which the label-conditioned encoder
learns to keep free of what y already says (for digits: slant, stroke width).

    transfer(A, B) = E[p(x | z_A, y_B)],   z_A = the posterior mean of q(z | A, y_A)

(every latent group at its zero-noise path): A's per-image code drawn in B's
group. A user's image without a label gets the model's own guess, the
generative classifier

    y*(x) = argmax_y  L_k(x | y),   L_k = the importance-weighted bound on log p(x | y)

(uniform p(y); k posterior draws per class). Codes read the image as x =
pixel / 255, with no binarisation or dequantisation noise.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from vae_jax import images, inference, latents
from vae_jax import model as model_lib
from vae_jax.data.image_convert import to_array
from vae_jax.errors import UserError


def check_model(run) -> None:
  """Refuses a model without two codes, in one line."""
  if not run.model.has_encoder or inference.num_classes(run) <= 0:
    raise UserError(f"--transfer needs a two-code model: a conditional VAE (model.num_classes > 0, e.g. "
                    f"configs/mnist_cvae.py or a labelled folder); this run's {run.config.model.name} has no "
                    "group code")


def _unit(images_BHWC: jax.Array) -> jax.Array:
  return images_BHWC.astype(jnp.float32) / 255.0


@functools.partial(jax.jit, static_argnames=("model",))
def codes(params, images_BHWC: jax.Array, y_B: jax.Array, *, model) -> tuple[jax.Array, ...]:
  """Each latent group's posterior mean path for uint8 images in their groups y_B: the per-image code."""
  return tuple(latents.posterior_means(params, images_BHWC, model=model, y=y_B))


@functools.partial(jax.jit, static_argnames=("model",))
def transfer(params, content_BHWC: jax.Array, content_y_B: jax.Array, style_y_B: jax.Array, *,
             model) -> jax.Array:
  """Images in [0, 1]: the content images' per-image codes decoded in the groups `style_y_B`."""
  zs = codes(params, content_BHWC, content_y_B, model=model)
  return jnp.clip(model_lib.decode(params, zs, model=model, y=style_y_B).mean, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=("model", "k"))
def _class_bound(params, images_BHWC: jax.Array, y_B: jax.Array, keys_B: jax.Array, *, model, k: int):
  """L_k(x | y) [B] at x = image / 255."""
  x = _unit(images_BHWC)
  context = model_lib.encode(params, x, model=model, y=y_B)

  def one(s):
    return model_lib.infer(params, context, keys_B, model=model, y=y_B, sample=s).log_weight(x)
  log_w_KB = jax.lax.map(one, jnp.arange(k))
  return jax.nn.logsumexp(log_w_KB, axis=0) - jnp.log(k)


def class_log_likelihoods(run, images_BHWC: np.ndarray, *, k: int = 10, seed: int = 0) -> np.ndarray:
  """[B, C]: L_k(x | y = c) for every class c (the same draws' keys for every class)."""
  keys = jax.random.split(jax.random.key(seed), len(images_BHWC))
  return np.stack([np.asarray(_class_bound(run.params, images_BHWC, np.full(len(images_BHWC), c, np.int32),
                                           keys, model=run.model, k=k)) for c in range(inference.num_classes(run))], 1)


def infer_labels(run, images_BHWC: np.ndarray, *, k: int = 10, seed: int = 0) -> np.ndarray:
  """int32 [B]: the model's own guess of each image's group, argmax_y L_k(x | y)."""
  return np.argmax(class_log_likelihoods(run, images_BHWC, k=k, seed=seed), axis=1).astype(np.int32)


def read_image(path: str, run, what: str) -> np.ndarray:
  """uint8 [S, S, C] for the run's model: the file converted, centre-cropped and resized."""
  return to_array(images.open_image(path, what), size=run.config.data.image_size,
                  channels=run.config.data.channels)


def transfer_files(run, content_path: str, style_path: str | None, *, content_label: int | None = None,
                   style_label: int | None = None) -> tuple[Image.Image, int, int]:
  """(the transfer image at the model's size, content group, style group); a group not given is the
  model's guess from its image (`style_path` may be None when `style_label` is given)."""
  inference.check_class(run, content_label, "--content_label")
  inference.check_class(run, style_label, "--style_label")
  a = read_image(content_path, run, "--content")
  y_a = content_label if content_label is not None else int(infer_labels(run, a[None])[0])
  if style_label is not None:
    y_b = style_label
  else:
    y_b = int(infer_labels(run, read_image(style_path, run, "--style")[None])[0])
  out = transfer(run.params, a[None], np.asarray([y_a], np.int32), np.asarray([y_b], np.int32), model=run.model)
  array = images.to_uint8(np.asarray(out)[0])
  return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array), y_a, y_b


def analogy_images(run, content_NHWC: np.ndarray, content_y_N: np.ndarray) -> np.ndarray:
  """[N * (1 + C), H, W, C] in [0, 1]: row i is content image i, then its transfer into each group."""
  c = inference.num_classes(run)
  rows = [content_NHWC[:, None] / 255.0]
  for group in range(c):
    rows.append(np.asarray(transfer(run.params, content_NHWC, content_y_N, np.full(len(content_NHWC), group,
                                                                                    np.int32), model=run.model))[:, None])
  return np.concatenate(rows, axis=1).reshape(-1, *content_NHWC.shape[1:])


def analogy_grid(run, content_NHWC: np.ndarray, content_y_N: np.ndarray) -> Image.Image:
  """The grid of `analogy_images`: column 0 the test images, column 1 + g their transfer into group g."""
  return images.grid_image(analogy_images(run, content_NHWC, content_y_N), ncol=1 + inference.num_classes(run))
