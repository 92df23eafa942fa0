"""Tests for vae_jax.data.folder: image folders with mixed files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from conftest import data_config
from vae_jax.data import load_datasets
from vae_jax.data import folder
from vae_jax.errors import UserError


def _save(path: Path, image: Image.Image, **kwargs) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path, **kwargs)


def _noise(size: tuple[int, int], mode: str, seed: int) -> Image.Image:
  channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
  pixels = np.random.default_rng(seed).integers(
      0, 256, (size[1], size[0], channels), dtype=np.uint8
  )
  return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels)


def _mixed_folder(root: Path) -> list[str]:
  """Writes one image of each kind; returns their relative paths, sorted."""
  _save(root / "a_rgb.png", _noise((40, 30), "RGB", 0))
  _save(root / "b_gray.jpg", _noise((20, 50), "L", 1), quality=90)
  _save(root / "c_rgba.PNG", _noise((17, 17), "RGBA", 2))
  _save(root / "sub/d_palette.gif", _noise((33, 21), "RGB", 3).quantize(16))
  _save(root / "sub/deeper/e.bmp", _noise((8, 9), "RGB", 4))
  _save(root / "sub/f.webp", _noise((64, 48), "RGB", 5))
  _save(
      root / "g_16bit.png", Image.fromarray(np.full((12, 10), 40000, np.uint16))
  )
  _save(root / "h.jpeg", _noise((100, 100), "RGB", 6))
  (root / "notes.txt").write_text("not an image")
  _save(root / ".hidden.png", _noise((5, 5), "RGB", 7))  # Skipped.
  return sorted(
      [
          "a_rgb.png",
          "b_gray.jpg",
          "c_rgba.PNG",
          "sub/d_palette.gif",
          "sub/deeper/e.bmp",
          "sub/f.webp",
          "g_16bit.png",
          "h.jpeg",
      ]
  )


def test_find_images(tmp_path):
  expected = _mixed_folder(tmp_path)
  assert folder.find_images(tmp_path) == expected


def _solid_folder(root: Path) -> list[tuple[float, float, float]]:
  """One solid-colour image of each kind; returns the RGB each should load as (alpha onto black,
  16-bit scaled by 1/257)."""
  _save(root / "a_rgb.png", Image.new("RGB", (40, 30), (200, 30, 60)))
  _save(root / "b_gray.jpg", Image.new("L", (20, 50), 90), quality=90)
  _save(root / "c_rgba.PNG", Image.new("RGBA", (17, 17), (100, 200, 50, 128)))
  _save(root / "sub/d_palette.gif", Image.new("RGB", (33, 21), (10, 220, 130)).quantize(16))
  _save(root / "sub/deeper/e.bmp", Image.new("RGB", (8, 9), (250, 250, 0)))
  _save(root / "sub/f.webp", Image.new("RGB", (64, 48), (0, 128, 255)), quality=95)
  _save(root / "g_16bit.png", Image.fromarray(np.full((12, 10), 40000, np.uint16)))
  _save(root / "h.jpeg", Image.new("RGB", (100, 100), (60, 60, 200)), quality=95)
  (root / "notes.txt").write_text("not an image")
  _save(root / ".hidden.png", Image.new("RGB", (5, 5), (1, 2, 3)))  # Skipped.
  a = 128 / 255
  grey16 = 40000 / 257
  return [(200, 30, 60), (90, 90, 90), (100 * a, 200 * a, 50 * a), (10, 220, 130), (250, 250, 0),
          (0, 128, 255), (grey16, grey16, grey16), (60, 60, 200)]


@pytest.mark.parametrize("channels", [1, 3])
def test_load_mixed_folder(tmp_path, channels):
  """Each of eight formats decodes to its file's colour (in ITU-R 601 grey for one channel); lossy
  formats within 4 levels. Train and test together hold each image once; text and hidden files
  are left out."""
  colours = np.array(_solid_folder(tmp_path))
  if channels == 1:
    colours = (colours @ np.array([0.299, 0.587, 0.114]))[:, None]
  train, test = folder.load_folder(
      str(tmp_path), size=16, channels=channels, test_fraction=0.25
  )
  assert len(test) >= 1 and train.dtype == test.dtype == np.uint8
  found = []
  for image in np.concatenate([train, test]).astype(np.float64):
    assert image.shape == (16, 16, channels)
    distance = np.abs(colours[:, None, None, :] - image[None]).max(axis=(1, 2, 3))
    found.append(int(np.argmin(distance)))
    assert distance[found[-1]] <= 4, (found[-1], distance)
  assert sorted(found) == list(range(8))
  assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_loaded_pixels_match_independent_decode(tmp_path):
  # A 16x16 RGB image needs no resize, so pixels must come through exactly.
  pixels = np.random.default_rng(0).integers(
      0, 256, (16, 16, 3), dtype=np.uint8
  )
  _save(tmp_path / "only.png", Image.fromarray(pixels))
  train, test = folder.load_folder(
      str(tmp_path), size=16, channels=3, test_fraction=0.0
  )
  assert len(test) == 0
  np.testing.assert_array_equal(train[0], pixels)


def _png_bytes() -> bytes:
  buffer = io.BytesIO()
  _noise((64, 64), "RGB", 9).save(buffer, format="PNG")
  return buffer.getvalue()


@pytest.mark.parametrize(
    "name,content",
    [
        ("truncated.png", _png_bytes()[:2000]),
        ("garbage.jpg", b"this is not a jpeg at all" * 10),
        ("empty.png", b""),
    ],
)
def test_corrupt_file_names_the_file(tmp_path, name, content):
  _save(tmp_path / "good.png", _noise((8, 8), "RGB", 0))
  (tmp_path / name).write_bytes(content)
  with pytest.raises(
      UserError, match=rf"^1 of 2 images .*: {name} \(.*skip_bad_images=True$"
  ):
    folder.load_folder(str(tmp_path), size=8, channels=3, test_fraction=0.1)


def test_missing_and_empty_folders(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    folder.load_folder(
        str(tmp_path / "nope"), size=8, channels=1, test_fraction=0.1
    )
  (tmp_path / "notes.txt").write_text("no images here")
  with pytest.raises(UserError, match="has no images"):
    folder.load_folder(str(tmp_path), size=8, channels=1, test_fraction=0.1)
  with pytest.raises(UserError, match="--config.data.dir"):
    folder.load_folder("", size=8, channels=1, test_fraction=0.1)


def _names(n: int) -> list[str]:
  return [f"class{i % 3}/img_{i:04d}.png" for i in range(n)]


def test_split_is_a_partition_and_deterministic():
  paths = _names(500)
  train, test = folder.split_paths(paths, 0.2)
  assert sorted(train + test) == sorted(paths)
  assert not set(train) & set(test)
  assert (train, test) == folder.split_paths(list(paths), 0.2)
  assert 60 <= len(test) <= 140  # ~100 expected from a uniform hash.


def test_split_is_stable_when_files_are_added():
  paths = _names(200)
  train, test = folder.split_paths(paths, 0.3)
  more_train, more_test = folder.split_paths(paths + _names(400)[200:], 0.3)
  assert set(test) <= set(more_test)
  assert set(train) <= set(more_train)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_small_folders_get_a_test_image(n):
  train, test = folder.split_paths(_names(n), 0.01)
  assert len(test) >= 1 and len(train) >= 1
  train, test = folder.split_paths(_names(n), 0.999)
  assert len(test) >= 1 and len(train) >= 1


def test_num_train_limits_decoding(tmp_path):
  for i in range(6):
    _save(tmp_path / f"{i}.png", _noise((8, 8), "L", i))
  (tmp_path / "z_bad.png").write_bytes(b"broken")
  paths = folder.find_images(tmp_path)
  train_paths, _ = folder.split_paths(paths, 0.0)
  if train_paths[-1] != "z_bad.png":
    pytest.fail("test setup: the broken file must sort last")
  train, _ = folder.load_folder(
      str(tmp_path), size=8, channels=1, test_fraction=0.0, num_train=3
  )
  assert len(train) == 3  # The broken file was never decoded.


# Unreadable files: all reported at once, or left out with skip_bad_images.

_BAD_CONTENTS = {
    "truncated": _png_bytes()[:2000],
    "garbage": b"this is not an image at all" * 10,
    "empty": b"",
}


def _good_files(root: Path, names: list[str]) -> None:
  for i, name in enumerate(names):
    _save(root / name, _noise((10 + i, 12), "RGB", 100 + i))


def _bad_files(root: Path, names: list[str]) -> None:
  kinds = list(_BAD_CONTENTS.values())
  for i, name in enumerate(names):
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(kinds[i % len(kinds)])


def _count_decodes(monkeypatch) -> list[str]:
  """Patches folder.decode_image to record each file it is called on."""
  calls = []
  real = folder.decode_image

  def counting(path, **kwargs):
    calls.append(Path(path).name)  # list.append is atomic across threads.
    return real(path, **kwargs)

  monkeypatch.setattr(folder, "decode_image", counting)
  return calls


GOOD = [f"good_{i:02d}.png" for i in range(9)]
BAD = ["a_truncated.png", "sub/m_garbage.jpg", "z_empty.png"]


def test_all_bad_files_are_reported_at_once(tmp_path, monkeypatch, capsys):
  _good_files(tmp_path, GOOD)
  _bad_files(tmp_path, BAD)
  calls = _count_decodes(monkeypatch)
  with pytest.raises(UserError) as raised:
    folder.load_folder(str(tmp_path), size=8, channels=3, test_fraction=0.3)
  message = str(raised.value)
  assert "\n" not in message
  assert message.startswith(f"3 of 12 images in {tmp_path} cannot be read: ")
  assert "a_truncated.png (image file is truncated" in message
  assert "sub/m_garbage.jpg (cannot identify image file)" in message
  assert "z_empty.png (empty file)" in message
  assert message.endswith("--config.data.skip_bad_images=True")
  assert sorted(calls) == sorted(Path(p).name for p in GOOD + BAD)  # Once each.
  assert "warning" not in capsys.readouterr().err


def test_many_bad_files_are_counted_not_all_named(tmp_path):
  _good_files(tmp_path, GOOD[:2])
  deep = f"{'d' * 100}/{'e' * 100}"  # Long names are shortened to their end.
  bad = [f"{deep}/bad_{i:02d}.png" for i in range(12)]
  _bad_files(tmp_path, bad)
  with pytest.raises(UserError) as raised:
    folder.load_folder(str(tmp_path), size=8, channels=3, test_fraction=0.3)
  message = str(raised.value)
  assert message.startswith("12 of 14 images")
  assert "\n" not in message and len(message) < 1200
  named = [f"/bad_{i:02d}.png (" in message for i in range(12)]
  assert named == [True] * 5 + [False] * 7
  assert " and 7 more; " in message


def _min_key_name(candidates: list[str]) -> str:
  return min(candidates, key=folder.split_key)


def test_skip_bad_images_is_the_folder_without_them(
    tmp_path, monkeypatch, capsys
):
  # The bad file with the smallest hash would be the forced test file of the
  # whole folder (no key is below 1e-6): leaving it out must not leave the
  # test split empty, but pick the clean folder's forced test file.
  bad = BAD + [_min_key_name([f"bad_{i}.png" for i in range(200)])]
  assert min(GOOD + bad, key=folder.split_key) == bad[-1], "test setup"
  clean, dirty = tmp_path / "clean", tmp_path / "dirty"
  _good_files(clean, GOOD)
  _good_files(dirty, GOOD)
  _bad_files(dirty, bad)
  kwargs = dict(size=8, channels=3, test_fraction=1e-6)
  expected = folder.load_folder(str(clean), **kwargs)
  capsys.readouterr()
  calls = _count_decodes(monkeypatch)
  got = folder.load_folder(str(dirty), skip_bad_images=True, **kwargs)
  assert len(got[1]) == 1
  for got_split, expected_split in zip(got, expected):
    np.testing.assert_array_equal(got_split, expected_split)
  assert sorted(calls) == sorted(Path(p).name for p in GOOD + bad)
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and lines[0].startswith("warning: left out 4 of 13")
  assert all(p in lines[0] for p in bad)


def test_skip_bad_images_keeps_splits_and_order(tmp_path, monkeypatch):
  good = [f"{c}/img_{i:03d}.png" for c in "xyz" for i in range(12)]
  bad = [f"{c}/img_{i:03d}_bad.png" for c in "xyz" for i in (0, 5, 11)]
  clean, dirty = tmp_path / "clean", tmp_path / "dirty"
  _good_files(clean, good)
  _good_files(dirty, good)
  _bad_files(dirty, bad)
  kwargs = dict(size=8, channels=3, test_fraction=0.25)
  expected = folder.load_labelled_folder(str(clean), **kwargs)
  got = folder.load_labelled_folder(str(dirty), skip_bad_images=True, **kwargs)
  assert got[2] == expected[2] == ("x", "y", "z")
  for got_split, expected_split in zip(got[:2], expected[:2]):
    assert len(got_split) >= 5
    np.testing.assert_array_equal(
        got_split.images_NHWC, expected_split.images_NHWC
    )
    np.testing.assert_array_equal(got_split.labels, expected_split.labels)


def test_skip_bad_images_with_limits_takes_the_next_good_files(
    tmp_path, monkeypatch, capsys
):
  # The first train files in path order are bad, so they are replaced by the
  # next good ones; files past the limits are never decoded.
  good = [f"m_{i:02d}.png" for i in range(10)]
  bad = ["a_0.png", "a_1.png", "z_9.png"]
  clean, dirty = tmp_path / "clean", tmp_path / "dirty"
  _good_files(clean, good)
  _good_files(dirty, good)
  _bad_files(dirty, bad)
  kwargs = dict(size=8, channels=3, test_fraction=0.0, num_train=4)
  expected, _ = folder.load_folder(str(clean), **kwargs)
  capsys.readouterr()
  calls = _count_decodes(monkeypatch)
  got, _ = folder.load_folder(str(dirty), skip_bad_images=True, **kwargs)
  np.testing.assert_array_equal(got, expected)
  assert sorted(calls) == ["a_0.png", "a_1.png"] + good[:4]
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and lines[0].startswith("warning: left out 2 of 6")


def test_skip_bad_images_with_no_good_image_is_an_error(tmp_path, capsys):
  _bad_files(tmp_path, BAD)
  with pytest.raises(UserError, match=r"^none of the 3 images .*z_empty\.png"):
    folder.load_folder(
        str(tmp_path),
        size=8,
        channels=3,
        test_fraction=0.3,
        skip_bad_images=True,
    )
  assert "warning" not in capsys.readouterr().err


def test_a_bad_image_stops_a_default_folder_config(tmp_path):
  """Unless the user opts in, a bad file is an error naming it, not a silently smaller dataset."""
  _good_files(tmp_path, GOOD)
  _bad_files(tmp_path, ["sub/m_garbage.jpg"])
  with pytest.raises(UserError, match=r"m_garbage\.jpg.*skip_bad_images=True$"):
    load_datasets(data_config(name="folder", dir=str(tmp_path), image_size=8, channels=3))
