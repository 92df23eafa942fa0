"""Tests for class labels through the data layer (data.labels=True).

Every label is checked against a source of truth outside the code under test:
the published MNIST labels and an independent gzip+numpy decode of the label
files, pixel colours chosen per class folder, TFDS's own records and feature
metadata, and the shapes factors regenerated from the shapes module.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import data_config
from vae_jax.data import load_datasets, pipeline, shapes
from vae_jax.data import source as source_lib
from vae_jax.errors import UserError


def _config(labels: bool = True, **overrides):
  """`data_config(**overrides)` with data.labels set (added if not a key)."""
  config = data_config(**overrides)
  with config.unlocked():
    config.labels = labels
  return config


def _all_labels(source) -> np.ndarray:
  return source_lib.gather_labels(source, np.arange(len(source)))


# ---------------------------------------------------------------- sources


def _numbered_images(n: int) -> np.ndarray:
  """Example i is a 2x3x1 image whose pixels encode i (i < 65536)."""
  images = np.zeros((n, 2, 3, 1), np.uint8)
  images[:, 0, 0, 0] = np.arange(n) // 256
  images[:, 0, 1, 0] = np.arange(n) % 256
  return images


def _ids(images: np.ndarray) -> np.ndarray:
  return images[:, 0, 0, 0].astype(int) * 256 + images[:, 0, 1, 0]


def _label_of_id(ids) -> np.ndarray:
  """The labels the test sources give example i: never 0, so padding shows."""
  return np.asarray(ids) % 5 + 1


class _LazyLabelled:
  """A record-at-a-time labelled source (like TFDS) that counts its reads."""

  def __init__(self, n: int, with_example: bool):
    self.images = _numbered_images(n)
    self.labels = list(_label_of_id(np.arange(n)))
    self.reads = 0
    if with_example:
      self.example = self._example

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, i: int) -> np.ndarray:
    self.reads += 1
    return self.images[i].copy()

  def _example(self, i: int):
    self.reads += 1
    return self.images[i].copy(), self.labels[i]


def _array_labelled(n: int) -> source_lib.ArraySource:
  return source_lib.ArraySource(
      _numbered_images(n), _label_of_id(np.arange(n))
  )


def _lazy_with_example(n: int) -> _LazyLabelled:
  return _LazyLabelled(n, with_example=True)


def _lazy_without_example(n: int) -> _LazyLabelled:
  return _LazyLabelled(n, with_example=False)


_LABELLED_SOURCES = [_array_labelled, _lazy_with_example, _lazy_without_example]


@pytest.mark.parametrize("make_source", _LABELLED_SOURCES)
def test_gather_labels_and_examples_stay_aligned(make_source):
  source = make_source(20)
  indices = [7, 0, 19, 7, 3]
  assert source_lib.has_labels(source)
  labels = source_lib.gather_labels(source, indices)
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(labels, _label_of_id(indices))
  images, labels = source_lib.gather_examples(source, indices)
  np.testing.assert_array_equal(_ids(images), indices)
  np.testing.assert_array_equal(labels, _label_of_id(indices))


@pytest.mark.parametrize("make_source", _LABELLED_SOURCES)
def test_head_keeps_labels_aligned(make_source):
  source = make_source(20)
  first = source_lib.head(source, 6)
  assert len(first) == 6 and source_lib.has_labels(first)
  assert len(first.labels) == 6
  images, labels = source_lib.gather_examples(first, range(6))
  np.testing.assert_array_equal(_ids(images), range(6))
  np.testing.assert_array_equal(labels, _label_of_id(range(6)))
  np.testing.assert_array_equal(_all_labels(first), _label_of_id(range(6)))
  if not isinstance(first, source_lib.ArraySource):
    with pytest.raises(IndexError):
      first.labels[6]  # pylint: disable=pointless-statement
    with pytest.raises(IndexError):
      first.example(6)


def test_lazy_examples_read_each_record_once():
  source = _lazy_with_example(20)
  source_lib.gather_examples(source, [1, 2, 3, 4])
  assert source.reads == 4


def test_unlabelled_sources():
  plain = source_lib.ArraySource(_numbered_images(4))
  assert not source_lib.has_labels(plain) and plain.labels is None
  assert not source_lib.has_labels(source_lib.head(plain, 2))
  images, labels = source_lib.gather_examples(plain, [2, 1])
  assert labels is None and _ids(images).tolist() == [2, 1]
  with pytest.raises(ValueError, match="no labels"):
    source_lib.gather_labels(plain, [0])


def test_array_source_rejects_bad_labels():
  images = _numbered_images(4)
  for bad in ([0, 1, 2], [0.5, 1, 2, 3], [[0, 1, 2, 3]], [0, -1, 2, 3]):
    with pytest.raises(ValueError):
      source_lib.ArraySource(images, bad)


# ---------------------------------------------------------------- pipeline


@pytest.mark.parametrize("make_source", _LABELLED_SOURCES)
def test_train_batches_same_images_labels_aligned(make_source):
  n, batch_size, seed = 40, 8, 5
  unlabelled = source_lib.ArraySource(_numbered_images(n))
  labelled = make_source(n)
  plain = pipeline.train_iterator(unlabelled, batch_size=batch_size, seed=seed)
  with_labels = pipeline.train_iterator(
      labelled, batch_size=batch_size, seed=seed
  )
  for _ in range(12):  # Past two epoch boundaries (5 batches per epoch).
    a, b = next(plain), next(with_labels)
    assert set(a) == {"image"} and set(b) == {"image", "label"}
    np.testing.assert_array_equal(a["image"], b["image"])
    assert b["label"].dtype == np.int32 and b["label"].shape == (batch_size,)
    np.testing.assert_array_equal(b["label"], _label_of_id(_ids(b["image"])))


@pytest.mark.parametrize("make_source", _LABELLED_SOURCES)
def test_resume_gives_identical_image_and_label_batches(make_source):
  source = make_source(40)

  def take(iterator, k):
    return [next(iterator) for _ in range(k)]

  iterator = pipeline.train_iterator(source, batch_size=8, seed=11)
  take(iterator, 7)
  state = json.loads(json.dumps(iterator.get_state()))
  expected = take(iterator, 6)
  fresh = pipeline.train_iterator(source, batch_size=8, seed=11)
  fresh.set_state(state)
  for got, want in zip(take(fresh, 6), expected):
    assert set(got) == set(want) == {"image", "label"}
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])
    np.testing.assert_array_equal(
        got["label"], _label_of_id(_ids(got["image"]))
    )


@pytest.mark.parametrize("make_source", _LABELLED_SOURCES)
def test_eval_batches_pad_labels(make_source):
  n, batch_size = 10, 4
  batches = list(pipeline.eval_batches(make_source(n), batch_size))
  assert len(batches) == 3
  seen_ids, seen_labels = [], []
  for batch in batches:
    assert set(batch) == {"image", "label", "mask"}
    assert batch["label"].dtype == np.int32
    assert batch["label"].shape == (batch_size,)
    mask = batch["mask"]
    seen_ids += _ids(batch["image"])[mask].tolist()
    seen_labels += batch["label"][mask].tolist()
    assert (batch["label"][~mask] == 0).all()
  assert seen_ids == list(range(n))
  assert seen_labels == _label_of_id(range(n)).tolist()
  assert batches[-1]["mask"].tolist() == [True, True, False, False]
  assert batches[-1]["label"].tolist()[2:] == [0, 0]


# ---------------------------------------------------------------- shapes


def _shape_labels_by_image(split: str, n: int, size: int) -> dict:
  """Image bytes -> shape ids of the examples with that image, from factors."""
  factors = shapes.sample_factors(np.arange(n), split)
  images = shapes.render(factors, size)
  table: dict[bytes, set] = {}
  for image, shape_id in zip(images, factors.shape):
    table.setdefault(image.tobytes(), set()).add(int(shape_id))
  return table


def test_shapes_labels_are_the_shape_factor():
  datasets = load_datasets(
      _config(shapes_num_train=300, shapes_num_test=60, num_train_examples=250)
  )
  assert datasets.num_classes == len(shapes.SHAPE_NAMES)
  assert datasets.class_names == shapes.SHAPE_NAMES
  for split, source, n in (
      ("train", datasets.train, 250),
      ("test", datasets.test, 60),
  ):
    assert len(source) == n
    labels = _all_labels(source)
    assert [source.factors(i)["shape"] for i in range(n)] == labels.tolist()
    assert set(labels.tolist()) == {0, 1, 2}
    # The label is the shape in the image: of the three shapes drawn with the example's other
    # factors (scale, rotation, position), the labelled one is the image the source holds.
    images = source_lib.gather(source, np.arange(n))
    factors = shapes.sample_factors(np.arange(n), split)
    drawn = [shapes.render(dataclasses.replace(factors, shape=np.full(n, s)), images.shape[1])
             for s in range(3)]
    match = np.stack([np.all(d.reshape(n, -1) == images.reshape(n, -1), axis=1) for d in drawn], axis=1)
    np.testing.assert_array_equal(match, np.eye(3, dtype=bool)[labels])


def test_shapes_pipeline_labels_on_and_off():
  overrides = dict(shapes_num_train=200, shapes_num_test=30)
  on = load_datasets(_config(True, **overrides))
  off = load_datasets(_config(False, **overrides))
  assert off.num_classes == 0 and off.class_names == ()
  assert not source_lib.has_labels(off.train)
  truth = _shape_labels_by_image("train", 200, 28)
  it_on = pipeline.train_iterator(on.train, batch_size=64, seed=3)
  it_off = pipeline.train_iterator(off.train, batch_size=64, seed=3)
  for _ in range(7):  # 3 batches per epoch: crosses two epochs.
    a, b = next(it_off), next(it_on)
    assert set(a) == {"image"}
    np.testing.assert_array_equal(a["image"], b["image"])
    for image, label in zip(b["image"], b["label"]):
      assert truth[image.tobytes()] == {int(label)}
  test_truth = _shape_labels_by_image("test", 30, 28)
  for batch in pipeline.eval_batches(on.test, 16):
    rows = zip(batch["image"], batch["label"], batch["mask"])
    for image, label, valid in rows:
      if valid:
        assert test_truth[image.tobytes()] == {int(label)}
      else:
        assert label == 0


# ---------------------------------------------------------------- IDX


def _independent_labels(path: Path) -> np.ndarray:
  with gzip.open(path, "rb") as f:
    content = f.read()
  magic, count = struct.unpack(">II", content[:8])
  assert magic == 0x801
  labels = np.frombuffer(content[8:], np.uint8)
  assert len(labels) == count
  return labels


def test_mnist_labels(mnist_dir):
  datasets = load_datasets(_config(name="mnist", dir=str(mnist_dir)))
  assert datasets.num_classes == 10
  assert datasets.class_names == tuple("0123456789")
  # Published: the first ten training digits of MNIST.
  published = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
  assert _all_labels(datasets.train)[:10].tolist() == published
  first = next(pipeline.eval_batches(datasets.train, 10))
  assert first["label"].tolist() == published
  test_labels = _all_labels(datasets.test)
  assert len(test_labels) == 10_000
  raw = _independent_labels(mnist_dir / "t10k-labels-idx1-ubyte.gz")
  np.testing.assert_array_equal(
      np.bincount(test_labels, minlength=10), np.bincount(raw, minlength=10)
  )
  np.testing.assert_array_equal(test_labels, raw)
  # Labels on vs off: the same training batches, labels from the file.
  off = load_datasets(
      _config(False, name="mnist", dir=str(mnist_dir), num_train_examples=256)
  )
  on = load_datasets(
      _config(name="mnist", dir=str(mnist_dir), num_train_examples=256)
  )
  train_raw = _independent_labels(mnist_dir / "train-labels-idx1-ubyte.gz")
  image_to_label = {
      on.train[i].tobytes(): int(train_raw[i]) for i in range(256)
  }
  assert len(image_to_label) == 256  # MNIST images are distinct.
  it_on = pipeline.train_iterator(on.train, batch_size=100, seed=0)
  it_off = pipeline.train_iterator(off.train, batch_size=100, seed=0)
  for _ in range(5):
    a, b = next(it_off), next(it_on)
    np.testing.assert_array_equal(a["image"], b["image"])
    expected = [image_to_label[image.tobytes()] for image in b["image"]]
    assert b["label"].tolist() == expected


def _idx(magic: int, array: np.ndarray) -> bytes:
  header = struct.pack(">I", magic) + b"".join(
      struct.pack(">I", d) for d in array.shape
  )
  return header + array.astype(np.uint8).tobytes()


def _write_labelled_idx(
    directory: Path,
    train_labels: list[int],
    test_labels: list[int],
    *,
    num_train_images: int | None = None,
    num_test_images: int | None = None,
) -> None:
  """IDX files whose image i has every pixel = 20 * its label + 3."""
  for prefix, labels, n in (
      ("train", train_labels, num_train_images),
      ("t10k", test_labels, num_test_images),
  ):
    n = len(labels) if n is None else n
    pixels = (20 * np.resize(np.asarray(labels), n) + 3).astype(np.uint8)
    images = np.broadcast_to(pixels[:, None, None], (n, 28, 28))
    (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx(0x803, images))
    )
    (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx(0x801, np.asarray(labels)))
    )


def test_idx_labels_follow_example_limits(tmp_path):
  rng = np.random.default_rng(0)
  train, test = rng.integers(0, 10, 30).tolist(), rng.integers(0, 10, 9)
  _write_labelled_idx(tmp_path, train, test.tolist())
  datasets = load_datasets(
      _config(
          name="fashion_mnist",
          dir=str(tmp_path),
          num_train_examples=12,
          num_test_examples=5,
      )
  )
  assert (len(datasets.train), len(datasets.test)) == (12, 5)
  for source, labels in ((datasets.train, train), (datasets.test, test)):
    got = _all_labels(source)
    np.testing.assert_array_equal(got, labels[: len(source)])
    pixels = source_lib.gather(source, range(len(source)))[:, 0, 0, 0]
    pixel_label = (pixels - 3) // 20
    np.testing.assert_array_equal(got, pixel_label)


def test_fashion_class_names_match_tfds_metadata(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  _write_labelled_idx(tmp_path, [1, 2], [3])
  datasets = load_datasets(_config(name="fashion_mnist", dir=str(tmp_path)))
  with tfds.testing.mock_data(num_examples=1):
    records = tfds.data_source("fashion_mnist", split="test")
    names = tuple(records.dataset_info.features["label"].names)
  assert datasets.class_names == names and datasets.num_classes == 10


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_idx_label_count_mismatch(tmp_path, split):
  counts = {"num_train_images": 6, "num_test_images": 4}
  counts["num_train_images" if split == "train" else "num_test_images"] += 1
  _write_labelled_idx(tmp_path, [1] * 6, [2] * 4, **counts)
  # Labels off: the label files are not read, so their count does not matter.
  load_datasets(_config(False, name="mnist", dir=str(tmp_path)))
  with pytest.raises(
      UserError, match=rf"{split}-labels-idx1-ubyte\.gz has \d labels but"
  ) as info:
    load_datasets(_config(name="mnist", dir=str(tmp_path)))
  assert "\n" not in str(info.value)


def test_idx_label_out_of_range(tmp_path):
  _write_labelled_idx(tmp_path, [1, 10], [2])
  with pytest.raises(
      UserError, match=r"train-labels.*label 10, outside 0\.\.9"
  ):
    load_datasets(_config(name="mnist", dir=str(tmp_path)))


def test_idx_missing_label_file(tmp_path):
  _write_labelled_idx(tmp_path, [1, 2], [3])
  (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
  load_datasets(_config(False, name="mnist", dir=str(tmp_path)))
  with pytest.raises(UserError, match="has no t10k-labels-idx1-ubyte"):
    load_datasets(_config(name="mnist", dir=str(tmp_path)))


# ---------------------------------------------------------------- folder

# Created in this (unsorted) order; class indices follow sorted names.
_COLOURS = {"zebra": (0, 0, 230), "cat": (230, 0, 0), "dog": (0, 230, 0)}


def _class_folder(root: Path, per_class: int = 7) -> dict[str, int]:
  """Constant-colour images under root/<class>/ (some nested deeper)."""
  for name, colour in _COLOURS.items():
    for i in range(per_class):
      sub = f"{name}/deeper" if i % 3 == 0 else name
      path = root / sub / f"{name}_{i}.png"
      path.parent.mkdir(parents=True, exist_ok=True)
      Image.new("RGB", (12 + i, 10), colour).save(path)
  return {name: per_class for name in _COLOURS}


def _class_from_pixels(images: np.ndarray) -> list[str]:
  """The class whose colour each image is, read from its mean colour."""
  names = list(_COLOURS)
  colours = np.array([_COLOURS[n] for n in names], np.float64)
  means = images.reshape(len(images), -1, 3).mean(1)
  nearest = np.abs(means[:, None, :] - colours[None]).sum(-1).argmin(1)
  return [names[j] for j in nearest]


def test_folder_labels_match_subfolders(tmp_path):
  counts = _class_folder(tmp_path)
  datasets = load_datasets(
      _config(
          name="folder",
          dir=str(tmp_path),
          image_size=8,
          channels=3,
          test_fraction=0.3,
      )
  )
  expected_names = tuple(sorted(_COLOURS))
  assert datasets.class_names == expected_names
  assert datasets.num_classes == 3
  assert len(datasets.test) >= 1
  total = {name: 0 for name in _COLOURS}
  for source in (datasets.train, datasets.test):
    images = source_lib.gather(source, range(len(source)))
    labels = _all_labels(source)
    by_colour = _class_from_pixels(images)
    assert [expected_names[label] for label in labels] == by_colour
    for name in by_colour:
      total[name] += 1
  assert total == counts
  # A limit on the training examples keeps labels with their images.
  limited = load_datasets(
      _config(
          name="folder",
          dir=str(tmp_path),
          image_size=8,
          channels=3,
          test_fraction=0.3,
          num_train_examples=5,
      )
  )
  images = source_lib.gather(limited.train, range(5))
  assert [
      expected_names[label] for label in _all_labels(limited.train)
  ] == _class_from_pixels(images)
  # The same folder without labels loads as before.
  off = load_datasets(
      _config(
          False,
          name="folder",
          dir=str(tmp_path),
          image_size=8,
          channels=3,
          test_fraction=0.3,
      )
  )
  assert off.num_classes == 0 and not source_lib.has_labels(off.train)
  np.testing.assert_array_equal(
      source_lib.gather(off.train, range(len(off.train))),
      source_lib.gather(datasets.train, range(len(datasets.train))),
  )


def test_folder_root_level_image_is_an_error(tmp_path):
  _class_folder(tmp_path, per_class=2)
  Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "stray.png")
  with pytest.raises(
      UserError, match=r"stray\.png is directly in data\.dir.*<class>/<images>"
  ) as info:
    load_datasets(_config(name="folder", dir=str(tmp_path), channels=3))
  assert "\n" not in str(info.value)


def test_folder_needs_two_classes(tmp_path):
  for i in range(3):
    path = tmp_path / "only" / f"{i}.png"
    path.parent.mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), (i, 0, 0)).save(path)
  with pytest.raises(UserError, match="1 class subfolder.*at least 2"):
    load_datasets(_config(name="folder", dir=str(tmp_path), channels=3))


# ---------------------------------------------------------------- TFDS


def _mock(tfds, num_examples: int):
  return tfds.testing.mock_data(
      num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE
  )


@pytest.mark.parametrize(
    "name,size,channels", [("mnist", 28, 1), ("cifar10", 32, 3)]
)
def test_tfds_labels_come_from_records(name, size, channels):
  tfds = pytest.importorskip("tensorflow_datasets")
  with _mock(tfds, 30):
    datasets = load_datasets(
        _config(
            name=name, image_size=size, channels=channels, num_test_examples=25
        )
    )
    assert datasets.num_classes == 10
    assert (len(datasets.train), len(datasets.test)) == (30, 25)
    for split, source in (("train", datasets.train), ("test", datasets.test)):
      records = tfds.data_source(name, split=split)
      expected = [int(records[i]["label"]) for i in range(len(source))]
      assert len(set(expected)) > 1  # Mock labels vary, so order matters.
      assert _all_labels(source).tolist() == expected
      for batch_index, batch in enumerate(pipeline.eval_batches(source, 4)):
        for row in np.flatnonzero(batch["mask"]):
          i = batch_index * 4 + row
          assert batch["label"][row] == expected[i]
          np.testing.assert_array_equal(
              batch["image"][row], records[i]["image"]
          )
    # Shuffled training batches: each label is its own image's record's.
    records = tfds.data_source(name, split="train")
    label_of_image = {
        np.asarray(records[i]["image"]).tobytes(): int(records[i]["label"])
        for i in range(len(records))
    }
    assert len(label_of_image) == len(records)  # Random mock images differ.
    iterator = pipeline.train_iterator(datasets.train, batch_size=4, seed=0)
    for _ in range(4):
      batch = next(iterator)
      expected = [label_of_image[image.tobytes()] for image in batch["image"]]
      assert batch["label"].tolist() == expected


def test_cifar10_class_names_are_the_published_ones():
  tfds = pytest.importorskip("tensorflow_datasets")
  with _mock(tfds, 2):
    datasets = load_datasets(_config(name="cifar10", image_size=32, channels=3))
  # batches.meta.txt of the CIFAR-10 release, label 0 first.
  published = "airplane automobile bird cat deer dog frog horse ship truck"
  assert datasets.class_names == tuple(published.split())


def test_celeb_a_has_no_labels():
  tfds = pytest.importorskip("tensorflow_datasets")
  with _mock(tfds, 2):
    with pytest.raises(
        UserError, match="celeb_a has no class labels.*<class>"
    ) as info:
      load_datasets(_config(name="celeb_a", image_size=32, channels=3))
    assert "\n" not in str(info.value)
    load_datasets(_config(False, name="celeb_a", image_size=32, channels=3))
