"""vae_jax.curves (curves.png from metrics.jsonl) and vae_jax.tensorboard (event files)."""

import struct
import sys

import numpy as np
import pytest
from PIL import Image

from vae_jax import curves
from vae_jax.errors import UserError
from vae_jax.metrics_log import MetricsLog

TRAIN = [
  {"split": "train", "step": 100, "loss": 200.0, "neg_elbo": 200.0, "recon": 190.0, "kl": 10.0,
   "images_per_s": 3000.0, "train_s": 1.0},
  {"split": "train", "step": 200, "loss": float("nan"), "neg_elbo": float("nan"), "recon": 120.0,
   "kl": float("inf"), "images_per_s": 6000.0, "train_s": 2.0},
  {"split": "train", "step": 300, "loss": 110.0, "neg_elbo": 110.0, "recon": 96.0, "kl": 14.0,
   "images_per_s": 5900.0, "train_s": 3.0},
]
TEST = [
  {"split": "test", "step": 200, "neg_elbo": 130.0, "recon": 115.0, "kl": 15.0, "is_nll": 125.0,
   "train_s": 2.0},
  {"split": "test", "step": 300, "neg_elbo": 112.0, "recon": 98.0, "kl": 14.0, "is_nll": 108.0,
   "train_s": 3.0},
]


def write_metrics(path, records):
  """`records` through the real writer, so non-finite values arrive as the strings it writes."""
  log = MetricsLog(path)
  for r in records:
    log.write(r)
  return path


def run_rows(tmp_path):
  records = [TRAIN[0], TRAIN[1], TEST[0], TRAIN[2], TEST[1]]  # interleaved, as a run writes them
  return curves.read_rows(write_metrics(tmp_path / "metrics.jsonl", records))


# The finite points of TRAIN and TEST, by series: what the curves must show.
SERIES = {
  "train/neg_elbo": ([100, 300], [200.0, 110.0]),
  "test/neg_elbo": ([200, 300], [130.0, 112.0]),
  "test/is_nll": ([200, 300], [125.0, 108.0]),
  "train/kl": ([100, 300], [10.0, 14.0]),
  "test/kl": ([200, 300], [15.0, 14.0]),
  "train/images_per_s": ([100, 200, 300], [3000.0, 6000.0, 5900.0]),
}


def test_series_is_what_the_file_says(tmp_path):
  data = run_rows(tmp_path)
  assert data[1]["neg_elbo"] == "nan" and data[1]["kl"] == "inf"  # what the writer really writes
  assert curves.series(data) == SERIES


def test_series_absent_or_never_finite_keys_give_no_series():
  rows = [  # an IWAE run: neg_iwae, no kl; neg_elbo never finite
    {"split": "train", "step": 10, "neg_iwae": 90.0, "neg_elbo": "nan", "images_per_s": 5.0},
    {"split": "train", "step": 20, "neg_iwae": "inf", "neg_elbo": "-inf"},
    {"split": "test", "step": 20, "neg_iwae": 95.5},
    {"split": "test", "neg_elbo": 80.0},  # no step: not placeable
  ]
  assert curves.series(rows) == {
    "train/neg_iwae": ([10], [90.0]),
    "test/neg_iwae": ([20], [95.5]),
    "train/images_per_s": ([10], [5.0]),
  }
  assert curves.series([]) == {}


def test_read_rows_skips_a_cut_line_and_a_missing_file_is_empty(tmp_path):
  path = write_metrics(tmp_path / "metrics.jsonl", TRAIN[:1])
  with path.open("a") as f:
    f.write('{"split": "train", "step": 2')  # a killed process's last line
  assert curves.read_rows(path) == [TRAIN[0]]
  assert curves.read_rows(tmp_path / "absent.jsonl") == []


def png_pixels(path):
  with Image.open(path) as im:
    assert im.format == "PNG"
    return np.asarray(im.convert("RGB"), dtype=np.float64)


def test_write_curves_plots_every_series_in_its_quantity_s_panel(tmp_path, monkeypatch):
  """The saved figure's lines are exactly the file's finite points, one panel per quantity (the
  nats of the bound, the KL, the throughput), and the PNG is what was drawn."""
  from matplotlib.figure import Figure
  drawn, save = [], Figure.savefig
  monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig), save(fig, *a, **k))[1])
  metrics = write_metrics(tmp_path / "metrics.jsonl", TRAIN + TEST)
  out = curves.write_curves(metrics, tmp_path / "curves.png")
  assert out == tmp_path / "curves.png" and len(drawn) == 1
  panels = [{line.get_label(): ([int(v) for v in line.get_xdata()], [float(v) for v in line.get_ydata()])
             for line in ax.get_lines()} for ax in drawn[0].axes]
  assert [sorted(p) for p in panels] == [["test/is_nll", "test/neg_elbo", "train/neg_elbo"],
                                         ["test/kl", "train/kl"], ["train/images_per_s"]]
  assert {name: xy for p in panels for name, xy in p.items()} == SERIES
  assert png_pixels(out).var() > 0  # the drawing reached the file
  assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.jsonl"]  # no temp file


def test_write_curves_leaves_out_panels_without_data(tmp_path):
  only_elbo = [{"split": "train", "step": s, "neg_elbo": 100.0 / s} for s in (1, 2, 3)]
  out = curves.write_curves(write_metrics(tmp_path / "m.jsonl", only_elbo), tmp_path / "c.png")
  assert png_pixels(out).shape == (360, 450, 3)


def test_write_curves_replaces_an_old_png(tmp_path):
  out = tmp_path / "curves.png"
  out.write_bytes(b"old")
  curves.write_curves(write_metrics(tmp_path / "metrics.jsonl", TRAIN), out)
  assert png_pixels(out).var() > 0


@pytest.mark.parametrize("content", [None, "", "\n", '{"split": "train", "step": 1, "loss": 3.0}\n'])
def test_write_curves_without_rows_writes_nothing(tmp_path, content):
  metrics = tmp_path / "metrics.jsonl"
  if content is not None:
    metrics.write_text(content)
  assert curves.write_curves(metrics, tmp_path / "curves.png") is None
  assert not (tmp_path / "curves.png").exists()
  assert len(list(tmp_path.iterdir())) == (content is not None)


def test_write_curves_failing_midway_keeps_the_old_png_and_no_temp_file(tmp_path, monkeypatch):
  from matplotlib.figure import Figure

  def broken_savefig(self, f, **kwargs):
    f.write(b"\x89PNG half")
    raise OSError("disk full")
  monkeypatch.setattr(Figure, "savefig", broken_savefig)
  out = tmp_path / "curves.png"
  out.write_bytes(b"old")
  metrics = write_metrics(tmp_path / "metrics.jsonl", TRAIN)
  with pytest.raises(OSError, match="disk full"):
    curves.write_curves(metrics, out)
  assert out.read_bytes() == b"old"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.jsonl"]


def read_scalars(logdir):
  """{tag: [(step, value)]} from the event files in `logdir`, checking the TFRecord framing and CRCs."""
  from tensorboardX.proto.event_pb2 import Event
  from tensorboardX.record_writer import masked_crc32c

  scalars = {}
  files = sorted(logdir.glob("events.out.tfevents.*"))
  assert files, f"no event file in {logdir}"
  for path in files:
    buf, pos = path.read_bytes(), 0
    while pos < len(buf):
      header = buf[pos:pos + 8]
      (length,), (header_crc,) = struct.unpack("<Q", header), struct.unpack("<I", buf[pos + 8:pos + 12])
      data = buf[pos + 12:pos + 12 + length]
      (data_crc,) = struct.unpack("<I", buf[pos + 12 + length:pos + 16 + length])
      assert header_crc == masked_crc32c(header) and data_crc == masked_crc32c(data)
      pos += 16 + length
      event = Event.FromString(data)
      for v in event.summary.value:
        scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
  return scalars


def test_tensorboard_logs_finite_numbers_as_split_key_at_step(tmp_path):
  pytest.importorskip("tensorboardX")
  from vae_jax.tensorboard import TensorBoardLog

  log = TensorBoardLog(tmp_path / "tb")
  log.write({"split": "train", "step": 100, "loss": 2.5, "kl": np.float32(0.75), "images_per_s": 3000,
             "neg_elbo": "nan", "recon": float("inf"), "device": "cpu", "flag": True})
  log.write({"split": "train", "step": 200, "loss": 1.25, "kl": "inf"})
  log.write({"split": "test", "step": 200, "neg_elbo": 101.5, "is_nll": 99.0})
  log.close()
  log.close()  # twice is fine
  log.write({"split": "train", "step": 300, "loss": 1.0})  # after close: ignored
  assert read_scalars(tmp_path / "tb") == {
    "train/loss": [(100, 2.5), (200, 1.25)],
    "train/kl": [(100, 0.75)],
    "train/images_per_s": [(100, 3000.0)],
    "test/neg_elbo": [(200, 101.5)],
    "test/is_nll": [(200, 99.0)],
  }


def test_tensorboard_disabled_writes_nothing(tmp_path):
  pytest.importorskip("tensorboardX")
  from vae_jax.tensorboard import TensorBoardLog

  log = TensorBoardLog(tmp_path / "tb", enabled=False)
  log.write({"split": "train", "step": 1, "loss": 1.0})
  log.close()
  assert not (tmp_path / "tb").exists()


def test_tensorboard_without_tensorboardx_is_a_user_error(tmp_path, monkeypatch):
  from vae_jax.tensorboard import TensorBoardLog

  monkeypatch.setitem(sys.modules, "tensorboardX", None)  # makes `import tensorboardX` fail
  with pytest.raises(UserError) as e:
    TensorBoardLog(tmp_path / "tb")
  assert 'pip install -e ".[tensorboard]"' in str(e.value) and "pip install tensorboardX" in str(e.value)
  assert not (tmp_path / "tb").exists()
