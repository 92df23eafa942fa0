"""Benchmark scripts that read a run's records: run_records.py keeps its test rows and identifying
config keys; is_nll_curve.py puts each IS-NLL row at the run's training seconds across resumes."""

import importlib.util
import json

from conftest import REPO


def _benchmark(name: str):
  """benchmarks/NAME.py as a module (benchmarks/ is not a package)."""
  spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


run_records = _benchmark("run_records")
is_nll_curve = _benchmark("is_nll_curve")


def _write_metrics(workdir, rows):
  (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_run_record_keeps_only_the_test_split_rows_and_the_identifying_config(tmp_path):
  rows = [{"split": "train", "step": 100, "neg_elbo": 120.0},
          {"split": "test", "step": 100, "neg_elbo": 110.5, "kl": 20.0, "kl_g1": 5.0, "extra": 1},
          {"split": "train", "step": 200, "neg_elbo": 100.0},
          {"split": "test", "step": 200, "neg_elbo": 99.25, "neg_iwae": 97.0, "loss": 97.0, "train_s": 12.5}]
  _write_metrics(tmp_path, rows)
  config = {"seed": 3, "loss": "beta_elbo", "beta": 2.0, "model": {"name": "vae", "latent_dim": 8},
            "data": {"name": "mnist"}}
  (tmp_path / "config.json").write_text(json.dumps(config))
  record = run_records.run_record(tmp_path)
  assert record["test"] == [{"step": 100, "neg_elbo": 110.5, "kl": 20.0, "kl_g1": 5.0},
                            {"step": 200, "neg_elbo": 99.25, "neg_iwae": 97.0, "loss": 97.0, "train_s": 12.5}]
  assert record["config"]["model.latent_dim"] == 8 and record["config"]["data.name"] == "mnist"
  assert record["config"]["beta"] == 2.0 and record["config"]["seed"] == 3
  assert record["config"]["model.class_prior"] is None  # absent from an older run's config


def _row(step, train_s, split="train"):
  row = {"split": split, "step": step, "train_s": train_s}
  return dict(row, is_nll=80.0, is_nll_stderr=1.0) if split == "test" else row


def test_curve_keeps_a_resumed_clock_and_adds_a_restarted_one(tmp_path):
  """Checkpoints at 200 and 400. A crash at 300 resumed with the kept clock (200's reading, 20 s):
  the time past the checkpoint is dropped, not added. A process of an older run restarting at 0
  after 400 has the clock so far (45 s) added."""
  _write_metrics(tmp_path, [
      _row(100, 10.0), _row(200, 20.0), _row(200, 20.0, "test"), _row(300, 31.0),   # crash
      _row(300, 30.0), _row(400, 40.0), _row(400, 40.0, "test"), _row(450, 45.0),   # crash
      _row(500, 9.0), _row(600, 19.0, "test")])                                     # clock from 0
  assert [(r["step"], r["train_s"]) for r in is_nll_curve.curve(tmp_path)] == [
      (200, 20.0), (400, 40.0), (600, 45.0 + 19.0)]
