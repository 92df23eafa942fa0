"""`load_datasets`: the data config in, a train and a test source out.

Dispatches on `data.name`, applies the example limits, and checks that the
images have the shape the config promises the model, so a mismatch is a
one-line error at start-up rather than a shape error inside a jitted step.

`data.dir` per dataset:
  shapes                 ignored (generated in memory)
  mnist, fashion_mnist   a folder of MNIST-format IDX files; '' = TFDS
  cifar10, celeb_a       the TFDS data_dir to read from / download to;
                         '' = `data.tfds_data_dir` (itself '' = TFDS default)
  folder                 the folder of images (required)
"""

from __future__ import annotations

import dataclasses

import ml_collections

from vae_jax.data import folder, idx, shapes, tfds_source
from vae_jax.data.source import ArraySource, Source, head
from vae_jax.errors import UserError

DATASET_NAMES = (
    "shapes",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "celeb_a",
    "folder",
)


@dataclasses.dataclass(frozen=True)
class Datasets:
  """The two splits of a dataset and the image shape they share."""

  name: str
  train: Source  # Random access: len(), [i] -> uint8 [H, W, C].
  test: Source
  image_shape: tuple[int, int, int]  # (H, W, C)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the data config's values, with the fix in each message."""
  if config.name not in DATASET_NAMES:
    raise UserError(
        f"data.name={config.name!r} is not a dataset; set --config.data.name"
        f" to one of {', '.join(DATASET_NAMES)}"
    )
  if config.channels not in (1, 3):
    raise UserError(
        f"data.channels={config.channels} is not supported; set"
        " --config.data.channels=1 (gray) or 3 (RGB)"
    )
  if config.image_size < 4:
    raise UserError(
        f"data.image_size={config.image_size} is too small; set"
        " --config.data.image_size to the image side, e.g. 28 or 64"
    )
  if not 0 <= config.test_fraction < 1:
    raise UserError(
        f"data.test_fraction={config.test_fraction} must be in [0, 1); set"
        " --config.data.test_fraction to e.g. 0.1"
    )
  for field in ("num_train_examples", "num_test_examples"):
    if config[field] < 0:
      raise UserError(
          f"data.{field}={config[field]} is negative; set"
          f" --config.data.{field} to 0 (all) or a positive count"
      )
  if config.name == "shapes":
    for field in ("shapes_num_train", "shapes_num_test"):
      if config[field] <= 0:
        raise UserError(
            f"data.{field}={config[field]} must be positive; set"
            f" --config.data.{field} to e.g. 10000"
        )


def _tfds_data_dir(config: ml_collections.ConfigDict) -> str:
  if config.dir and config.tfds_data_dir and config.dir != config.tfds_data_dir:
    raise UserError(
        f"data.dir={config.dir} and data.tfds_data_dir={config.tfds_data_dir}"
        f" both name a TFDS folder for {config.name}; set only one of them"
    )
  return config.dir or config.tfds_data_dir


def _load_splits(config: ml_collections.ConfigDict) -> tuple[Source, Source]:
  """Both splits, limited to num_*_examples where the loader can do it early."""
  n_train, n_test = config.num_train_examples, config.num_test_examples
  if config.name == "shapes":
    n_train = min(n_train or config.shapes_num_train, config.shapes_num_train)
    n_test = min(n_test or config.shapes_num_test, config.shapes_num_test)
    return shapes.load_shapes(
        num_train=n_train, num_test=n_test, image_size=config.image_size
    )
  if config.name == "folder":
    train, test = folder.load_folder(
        config.dir,
        size=config.image_size,
        channels=config.channels,
        test_fraction=config.test_fraction,
        num_train=n_train,
        num_test=n_test,
    )
    return ArraySource(train), ArraySource(test)
  if config.name in ("mnist", "fashion_mnist") and config.dir:
    train, test = idx.load_idx_dir(config.dir)
    return ArraySource(train), ArraySource(test)
  data_dir = (
      config.tfds_data_dir
      if config.name in ("mnist", "fashion_mnist")
      else _tfds_data_dir(config)
  )
  return tfds_source.load_tfds(
      config.name,
      data_dir=data_dir,
      image_size=config.image_size,
      channels=config.channels,
      num_train=n_train,
      num_test=n_test,
  )


def _check_shape(
    name: str, split: str, source: Source, expected: tuple[int, int, int]
) -> None:
  """UserError unless `source`'s images are `expected` (H, W, C)."""
  if len(source) == 0:
    return
  got = tuple(source[0].shape)
  if got == expected:
    return
  if len(got) != 3 or got[0] != got[1]:
    raise UserError(
        f"{name} {split} images have shape {got}, not square [H, W, C]; use"
        " data.name=folder to crop and resize such images"
    )
  size, _, channels = got
  raise UserError(
      f"{name} images are {size}x{size}x{channels} but the config asks for"
      f" {expected[0]}x{expected[1]}x{expected[2]}; set"
      f" --config.data.image_size={size} --config.data.channels={channels}"
  )


def load_datasets(data_config: ml_collections.ConfigDict) -> Datasets:
  """Loads the dataset `data_config` names; see the module doc for `dir`."""
  validate(data_config)
  train, test = _load_splits(data_config)
  train = head(train, data_config.num_train_examples)
  test = head(test, data_config.num_test_examples)
  if len(train) == 0:
    raise UserError(
        f"data.name={data_config.name} has no training examples; check"
        " --config.data.dir and --config.data.num_train_examples"
    )
  size, channels = data_config.image_size, data_config.channels
  image_shape = (size, size, channels)
  for split, source in (("train", train), ("test", test)):
    _check_shape(data_config.name, split, source, image_shape)
  return Datasets(data_config.name, train, test, image_shape)
