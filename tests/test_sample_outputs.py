"""sample.py's outputs: every argument and output path is checked before anything is written, files
are PNG or JPEG as their extension says, written atomically, and no temporary file is left behind.

Bad input is one line `error: ...`, exit status 2, no traceback, and no file written (not even an
earlier, good output)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_cli import TINY, assert_user_error, run, tree_digest
from vae_jax import images
from vae_jax.errors import UserError

JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
  """A tiny unconditional run trained through the CLI (one device), shared by this module."""
  wd = tmp_path_factory.mktemp("outputs") / "run"
  run("train.py", f"--workdir={wd}", *TINY)
  return wd


@pytest.fixture
def out(tmp_path) -> Path:
  """An empty directory for outputs, with a file `afile` in it (a parent that is not a directory)."""
  d = tmp_path / "out"
  d.mkdir()
  (d / "afile").write_text("not a directory")
  (d / "adir").mkdir()
  return d


def listing(directory: Path) -> list[str]:
  """Every path under `directory`, hidden ones included, with each file's bytes' length."""
  return sorted(f"{p.relative_to(directory)}:{p.stat().st_size if p.is_file() else 'dir'}"
                for p in directory.rglob("*"))


def temp_files(directory: Path) -> list[Path]:
  return [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


def sample(workdir: Path, *args: str):
  return run("sample.py", f"--workdir={workdir}", "--num_samples=4", "--num_reconstructions=4",
             "--interpolation_rows=2", "--interpolation_steps=3", *args, check=False)


def test_each_output_in_the_format_its_extension_names(trained, out):
  (out / "s.jpg").write_bytes(b"old contents, replaced whole")
  proc = sample(trained, f"--output={out / 's.jpg'}", f"--reconstructions={out / 'r.JPEG'}",
                f"--interpolations={out / 'i.png'}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  for name, magic, fmt in (("s.jpg", JPEG_MAGIC, "JPEG"), ("r.JPEG", JPEG_MAGIC, "JPEG"),
                           ("i.png", PNG_MAGIC, "PNG")):
    assert (out / name).read_bytes().startswith(magic), name
    with Image.open(out / name) as img:
      assert img.format == fmt and img.mode == "L", (name, img.format, img.mode)  # shapes: 1 channel
      img.load()
  with Image.open(out / "s.jpg") as img:
    assert img.size == (2 * 29 + 1, 2 * 29 + 1)  # 2x2 grid of 28x28 with 1-pixel borders
  assert temp_files(out) == []
  assert str(out / "i.png") in proc.stdout


BAD_PATHS = {
    "an existing directory": (["--output={out}/adir"], ["--output", "is a directory"]),
    "a missing parent directory": (["--reconstructions={out}/missing/r.png"],
                                   ["--reconstructions", "missing", "does not exist"]),
    "a parent that is a file": (["--interpolations={out}/afile/i.png"],
                                ["--interpolations", "afile is a file, not a directory"]),
    "an unsupported extension": (["--interpolations={out}/i.gif"], [".gif", ".png, .jpg, .jpeg"]),
    "no extension": (["--reconstructions={out}/r"], ["--reconstructions", "no extension"]),
    "two outputs, one file": (["--reconstructions={out}/s.png"], ["--output", "--reconstructions",
                                                                  "same file"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_bad_output_path_writes_nothing(trained, out, case):
  """The good --output is not written either, nor any temporary file; the run is untouched."""
  args, fragments = BAD_PATHS[case]
  before, run_before = listing(out), tree_digest(trained)
  proc = sample(trained, f"--output={out / 's.png'}", *(a.format(out=out) for a in args))
  assert_user_error(proc, *fragments)
  assert listing(out) == before
  assert tree_digest(trained) == run_before


BAD_ARGUMENTS = {
    "a label for an unconditional model": (["--label=1"], ["--label", "conditional"]),
    "group temperatures that are not numbers": (["--group_temperatures=a,b"], ["not numbers"]),
    "too many group temperatures": (["--group_temperatures=1,1,1"], ["--group_temperatures", "got 3"]),
    "more reconstructions than test images": (["--num_reconstructions=1000"], ["test split has 100"]),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_argument_found_after_loading_writes_nothing(trained, out, case):
  """Arguments only the loaded run can check still fail before any of the good outputs is written."""
  args, fragments = BAD_ARGUMENTS[case]
  before = listing(out)
  proc = sample(trained, f"--output={out / 's.png'}", f"--reconstructions={out / 'r.jpg'}",
                f"--interpolations={out / 'i.png'}", *args)
  assert_user_error(proc, *fragments)
  assert listing(out) == before
  assert not (out / "s.png").exists()


# --- images.write_images in-process: all or nothing, never a temporary file ---------------------

def test_write_images_rgb_jpeg_and_png(tmp_path):
  rgb = images.grid_image(np.random.default_rng(0).random((4, 8, 8, 3)), ncol=2)
  written = images.write_images([(tmp_path / "a.jpeg", rgb), (tmp_path / "b.png", rgb)])
  assert written == [tmp_path / "a.jpeg", tmp_path / "b.png"]
  with Image.open(tmp_path / "a.jpeg") as a, Image.open(tmp_path / "b.png") as b:
    assert (a.format, a.mode, b.format, b.mode) == ("JPEG", "RGB", "PNG", "RGB")
    np.testing.assert_array_equal(np.asarray(b), np.asarray(rgb))  # PNG is lossless
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpeg", "b.png"]


def test_failure_on_a_later_image_leaves_earlier_paths_as_they_were(tmp_path, monkeypatch):
  (tmp_path / "a.png").write_bytes(b"previous")
  gray = images.grid_image(np.zeros((1, 4, 4, 1)))
  real_save = Image.Image.save

  def save(self, fp, *args, **kwargs):
    if ".b.png." in str(fp):
      Path(fp).write_bytes(b"half an image")
      raise OSError(28, "No space left on device")
    return real_save(self, fp, *args, **kwargs)

  monkeypatch.setattr(Image.Image, "save", save)
  with pytest.raises(UserError, match="b.png.*No space left"):
    images.write_images([(tmp_path / "a.png", gray), (tmp_path / "b.png", gray)])
  assert (tmp_path / "a.png").read_bytes() == b"previous"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no b.png, no *.tmp


def test_check_output_refuses_before_touching_the_disk(tmp_path):
  (tmp_path / "f").write_text("x")
  before = listing(tmp_path)
  for bad, fragment in ((tmp_path, "is a directory"), (tmp_path / "f" / "deep" / "x.png", "is a file"),
                        (tmp_path / "new" / "x.png", "does not exist"), (tmp_path / "x.bmp", ".bmp"),
                        ("", "is empty")):
    with pytest.raises(UserError, match=fragment):
      images.check_output(bad, "--output")
  assert images.check_output(tmp_path / "X.JPG", "--output") == tmp_path / "X.JPG"
  assert listing(tmp_path) == before


def test_traversals_and_slerp_interpolations_through_the_cli(trained, out):
  proc = sample(trained, f"--output={out / 's.png'}", f"--traversals={out / 't.png'}", "--traversal_units=3",
                "--traversal_values=5", f"--interpolations={out / 'slerp.png'}", "--interpolation_method=slerp")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert Image.open(out / "t.png").size == (5 * 29 + 1, 3 * 29 + 1)  # 5 values x 3 units, 1-pixel gaps
  proc = sample(trained, f"--output={out / 's2.png'}", f"--interpolations={out / 'line.png'}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  slerp, line = np.asarray(Image.open(out / "slerp.png")), np.asarray(Image.open(out / "line.png"))
  assert slerp.shape == line.shape
  w = 28 + 1  # the end columns are the same posterior means; the middle ones follow different paths
  np.testing.assert_array_equal(slerp[:, :w + 1], line[:, :w + 1])
  assert not np.array_equal(slerp[:, w + 1:2 * w + 1], line[:, w + 1:2 * w + 1])


def test_transfer_needs_a_two_code_model(trained, out):
  proc = sample(trained, "--transfer", f"--output={out / 'o.png'}")
  assert_user_error(proc, "--transfer needs a two-code model")
  assert not (out / "o.png").exists()


def test_inpaintings_of_a_complete_data_run_need_a_pattern(trained, out):
  proc = sample(trained, f"--inpaintings={out / 'g.png'}", f"--output={out / 's.png'}")
  assert_user_error(proc, "--inpaintings needs a missing-data pattern")
  assert not (out / "s.png").exists()
  proc = sample(trained, f"--inpaintings={out / 'g.png'}", f"--output={out / 's.png'}", "--missing=block",
                "--missing_block=6", "--num_inpaintings=2", "--importance_samples=5")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert Image.open(out / "g.png").size == (2 * 29 + 1, 3 * 29 + 1)
