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

`data.labels` (optional key, default False): when True the sources also carry
integer class labels (see `source.py`) and `Datasets` says how many classes
there are and their names:
  shapes                 the shape id: square, ellipse, triangle
  mnist, fashion_mnist   the label files beside the IDX images, or TFDS's
                         "label" field
  cifar10                TFDS's "label" field
  celeb_a                none: UserError
  folder                 each image's top-level subfolder, DIR/<class>/...,
                         classes numbered in sorted name order

`data.missing` (mcar or block; '' = complete): both splits lose pixels by a
fixed pattern, see `missing.py`; batches then carry "observed" masks.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from vae_jax.data import augment, folder, idx, missing, shapes, tfds_source
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


# Class names by label, as the datasets publish them.
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    "shapes": shapes.SHAPE_NAMES,
}


@dataclasses.dataclass(frozen=True)
class Datasets:
  """The two splits of a dataset and the image shape they share.

  With data.labels on, both sources carry labels in [0, num_classes) and
  `class_names[label]` names each class; otherwise num_classes is 0 and
  class_names is empty.
  """

  name: str
  train: Source  # Random access: len(), [i] -> uint8 [H, W, C].
  test: Source
  image_shape: tuple[int, int, int]  # (H, W, C)
  num_classes: int = 0
  class_names: tuple[str, ...] = ()

  def __post_init__(self):
    if self.num_classes != len(self.class_names):
      raise ValueError(
          f"num_classes={self.num_classes} but {len(self.class_names)} class"
          " names"
      )


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
  if config.get("missing", ""):
    missing.validate(config)
  augment.validate(config)
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


def _load_splits(
    config: ml_collections.ConfigDict, labels: bool
) -> tuple[Source, Source, tuple[str, ...]]:
  """Both splits and the class names (() without labels).

  Splits are limited to num_*_examples where the loader can do it early.
  """
  n_train, n_test = config.num_train_examples, config.num_test_examples
  class_names = CLASS_NAMES.get(config.name, ()) if labels else ()
  if config.name == "shapes":
    n_train = min(n_train or config.shapes_num_train, config.shapes_num_train)
    n_test = min(n_test or config.shapes_num_test, config.shapes_num_test)
    train, test = shapes.load_shapes(
        num_train=n_train,
        num_test=n_test,
        image_size=config.image_size,
        labels=labels,
    )
    return train, test, class_names
  if config.name == "folder":
    kwargs = dict(
        size=config.image_size,
        channels=config.channels,
        test_fraction=config.test_fraction,
        num_train=n_train,
        num_test=n_test,
        skip_bad_images=bool(config.get("skip_bad_images", False)),
    )
    if labels:
      return folder.load_labelled_folder(config.dir, **kwargs)
    train, test = folder.load_folder(config.dir, **kwargs)
    return ArraySource(train), ArraySource(test), ()
  if config.name in ("mnist", "fashion_mnist") and config.dir:
    train, test = idx.load_idx_dir(config.dir)
    if not labels:
      return ArraySource(train), ArraySource(test), ()
    train_labels, test_labels = idx.load_idx_labels(
        config.dir,
        num_train=len(train),
        num_test=len(test),
        num_classes=len(class_names),
    )
    return (
        ArraySource(train, train_labels),
        ArraySource(test, test_labels),
        class_names,
    )
  data_dir = (
      config.tfds_data_dir
      if config.name in ("mnist", "fashion_mnist")
      else _tfds_data_dir(config)
  )
  train, test = tfds_source.load_tfds(
      config.name,
      data_dir=data_dir,
      image_size=config.image_size,
      channels=config.channels,
      num_train=n_train,
      num_test=n_test,
      labels=labels,
  )
  return train, test, class_names


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
  labels = bool(data_config.get("labels", False))
  train, test, class_names = _load_splits(data_config, labels)
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
  if data_config.get("missing", ""):
    missing.validate(data_config, image_shape)
    pattern = missing.MissingPattern.from_config(data_config)
    train = missing.MissingSource(train, pattern, "train")
    test = missing.MissingSource(test, pattern, "test")
  return Datasets(
      data_config.name,
      train,
      test,
      image_shape,
      num_classes=len(class_names),
      class_names=class_names,
  )
