"""The judge: a small conv classifier trained on a dataset's labelled training split.

Its penultimate layer (`feature_dims` units after a ReLU) is the feature space
of the sample-quality metrics for MNIST-like data (the "Fréchet LeNet
distance" practice: an Inception network trained on photos says little about
digits), and its logits give the class of a generated image: the accuracy of
conditional samples and the class histogram of unconditional ones.

Training (`train_judge`): Adam with a cosine schedule and weight decay,
random translations of up to `shift` pixels (zero padding) as augmentation,
one jitted step per call, labels from `data.labels`. A judge is saved as
JUDGE_DIR/judge.msgpack (parameters) and JUDGE_DIR/judge.json (architecture,
image shape, classes, training settings and its measured test accuracy),
each written atomically; `load_judge` reads them back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vae_jax.errors import UserError

PARAMS_FILE = "judge.msgpack"
INFO_FILE = "judge.json"


class JudgeNet(nn.Module):
  """Two or three stages of (3x3 conv, 3x3 stride-2 conv), then a dense feature layer and the logits.

  A stage is added while the feature map is at least 16 pixels across, so 28x28 gets two stages
  (7x7 at the end) and 64x64 gets three (8x8).
  """

  num_classes: int
  widths: Sequence[int] = (32, 64, 128)
  feature_dims: int = 128

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x in [0, 1] -> (features [B, feature_dims], logits [B, num_classes])."""
    h = x_BHWC * 2.0 - 1.0
    for i, width in enumerate(self.widths):
      if i >= 2 and h.shape[1] < 16:
        break
      h = nn.relu(nn.Conv(width, (3, 3))(h))
      h = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2))(h))
    features = nn.relu(nn.Dense(self.feature_dims)(h.reshape(h.shape[0], -1)))
    return features, nn.Dense(self.num_classes)(features)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  steps: int = 4000  # measured: 99.47% on MNIST, 92.78% on Fashion-MNIST (README)
  batch_size: int = 128
  learning_rate: float = 2e-3
  weight_decay: float = 5e-4
  shift: int = 2
  seed: int = 0


def shift_images(x_BHWC: jax.Array, keys_B: jax.Array, shift: int) -> jax.Array:
  """Each image translated by its own uniform offset in [-shift, shift]^2, zeros shifted in."""
  if shift <= 0:
    return x_BHWC
  _, h, w, _ = x_BHWC.shape
  padded = jnp.pad(x_BHWC, ((0, 0), (shift, shift), (shift, shift), (0, 0)))

  def one(image, key):
    dy, dx = jax.random.randint(key, (2,), 0, 2 * shift + 1)
    return jax.lax.dynamic_slice(image, (dy, dx, 0), (h, w, image.shape[-1]))
  return jax.vmap(one)(padded, keys_B)


def make_train_step(net: JudgeNet, optimizer: optax.GradientTransformation, shift: int) -> Callable:
  """A jitted step (params, opt_state, images uint8, labels, key) -> (params, opt_state, loss)."""

  def loss_fn(params, x, labels):
    _, logits = net.apply({"params": params}, x)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

  @jax.jit
  def step(params, opt_state, images_BHWC, labels_B, key):
    keys_B = jax.random.split(key, images_BHWC.shape[0])
    x = shift_images(images_BHWC.astype(jnp.float32) / 255.0, keys_B, shift)
    loss, grads = jax.value_and_grad(loss_fn)(params, x, labels_B)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss
  return step


def _outputs_fn(net: JudgeNet) -> Callable:
  return jax.jit(lambda params, images: net.apply({"params": params}, images.astype(jnp.float32) / 255.0))


@dataclasses.dataclass
class Judge:
  """A trained judge: `features(images)` and `logits(images)` on uint8 [N, H, W, C] images."""

  net: JudgeNet
  params: Any
  info: dict
  batch_size: int = 500
  _apply: Callable | None = None

  def outputs(self, images_NHWC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, F], logits [N, C]) as float64, in padded batches (one compile)."""
    images_NHWC = np.asarray(images_NHWC)
    expected = tuple(self.info["image_shape"])
    if images_NHWC.shape[1:] != expected:
      raise UserError(f"the judge was trained on images of shape {expected}, got {images_NHWC.shape[1:]}")
    if self._apply is None:
      self._apply = _outputs_fn(self.net)
    feats, logits = [], []
    for start in range(0, len(images_NHWC), self.batch_size):
      batch = images_NHWC[start:start + self.batch_size]
      padded = np.concatenate([batch, np.zeros((self.batch_size - len(batch), *expected), batch.dtype)])
      f, l = jax.device_get(self._apply(self.params, padded))
      feats.append(f[:len(batch)])
      logits.append(l[:len(batch)])
    return (np.concatenate(feats).astype(np.float64), np.concatenate(logits).astype(np.float64))

  def fingerprint(self) -> str:
    """A digest of the parameters: a retrained judge gets another one."""
    return hashlib.sha256(flax.serialization.to_bytes(jax.device_get(self.params))).hexdigest()[:16]

  def features(self, images_NHWC: np.ndarray) -> np.ndarray:
    return self.outputs(images_NHWC)[0]

  def predict(self, images_NHWC: np.ndarray) -> np.ndarray:
    """The most probable class of each image, int [N]."""
    return np.argmax(self.outputs(images_NHWC)[1], axis=1)


def accuracy(judge: Judge, images_NHWC: np.ndarray, labels_N: np.ndarray) -> float:
  return float(np.mean(judge.predict(images_NHWC) == np.asarray(labels_N)))


def train_judge(train_images: np.ndarray, train_labels: np.ndarray, num_classes: int,
                settings: TrainSettings, *, log: Callable[[str], None] = print) -> Judge:
  """Trains a judge on uint8 images [N, H, W, C] and int labels [N]; returns it (not yet evaluated)."""
  net = JudgeNet(num_classes=num_classes)
  key = jax.random.key(settings.seed)
  init_key, data_key, aug_key = jax.random.split(key, 3)
  params = net.init(init_key, jnp.zeros((1, *train_images.shape[1:])))["params"]
  schedule = optax.cosine_decay_schedule(settings.learning_rate, settings.steps)
  optimizer = optax.adamw(schedule, weight_decay=settings.weight_decay)
  opt_state = optimizer.init(params)
  step_fn = make_train_step(net, optimizer, settings.shift)
  rng = np.random.default_rng(np.asarray(jax.random.key_data(data_key)))
  order, position = rng.permutation(len(train_images)), 0
  t0 = time.perf_counter()
  for step in range(settings.steps):
    if position + settings.batch_size > len(order):
      order, position = rng.permutation(len(train_images)), 0
    idx = order[position:position + settings.batch_size]
    position += settings.batch_size
    params, opt_state, loss = step_fn(params, opt_state, train_images[idx], train_labels[idx],
                                      jax.random.fold_in(aug_key, step))
    if (step + 1) % max(settings.steps // 10, 1) == 0:
      log(f"judge step {step + 1}/{settings.steps}: loss {float(loss):.4f} "
          f"({time.perf_counter() - t0:.0f} s)")
  info = {"image_shape": list(train_images.shape[1:]), "num_classes": num_classes,
          "feature_dims": net.feature_dims, "widths": list(net.widths),
          "settings": dataclasses.asdict(settings), "train_examples": len(train_images),
          "train_s": time.perf_counter() - t0}
  return Judge(net=net, params=params, info=info)


def _atomic_write(path: Path, data: bytes) -> None:
  tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: two writers never share it
  tmp.write_bytes(data)
  os.replace(tmp, path)


def save_judge(judge: Judge, directory: str | os.PathLike) -> None:
  """Writes the parameters, then the info (whose presence marks a complete judge)."""
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  _atomic_write(directory / PARAMS_FILE, flax.serialization.to_bytes(jax.device_get(judge.params)))
  _atomic_write(directory / INFO_FILE, (json.dumps(judge.info, indent=2) + "\n").encode())


def is_judge_dir(directory: str | os.PathLike) -> bool:
  return (Path(directory) / INFO_FILE).is_file() and (Path(directory) / PARAMS_FILE).is_file()


def load_judge(directory: str | os.PathLike) -> Judge:
  """The judge saved in `directory`; UserError when there is none or it does not read."""
  directory = Path(directory)
  if not is_judge_dir(directory):
    raise UserError(f"no judge in {directory}; train one with: python -m vae_jax.judge --config NAME "
                    f"--workdir {directory}")
  try:
    info = json.loads((directory / INFO_FILE).read_text())
    net = JudgeNet(num_classes=info["num_classes"], widths=tuple(info["widths"]),
                   feature_dims=info["feature_dims"])
    target = net.init(jax.random.key(0), jnp.zeros((1, *info["image_shape"])))["params"]
    params = flax.serialization.from_bytes(target, (directory / PARAMS_FILE).read_bytes())
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f"the judge in {directory} does not read ({type(e).__name__}: {e}); "
                    "delete the folder to train it again") from None
  return Judge(net=net, params=params, info=info)
