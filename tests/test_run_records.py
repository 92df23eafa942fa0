"""benchmarks/run_records.py keeps a run's test rows, in order, and the config keys that identify it."""

import importlib.util
import json

from conftest import REPO

_spec = importlib.util.spec_from_file_location("run_records", REPO / "benchmarks" / "run_records.py")
run_records = importlib.util.module_from_spec(_spec)  # benchmarks/ is not a package
_spec.loader.exec_module(run_records)


def test_run_record_keeps_only_the_test_split_rows_and_the_identifying_config(tmp_path):
  rows = [{"split": "train", "step": 100, "neg_elbo": 120.0},
          {"split": "test", "step": 100, "neg_elbo": 110.5, "kl": 20.0, "kl_g1": 5.0, "extra": 1},
          {"split": "train", "step": 200, "neg_elbo": 100.0},
          {"split": "test", "step": 200, "neg_elbo": 99.25, "neg_iwae": 97.0, "loss": 97.0, "train_s": 12.5}]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  config = {"seed": 3, "loss": "beta_elbo", "beta": 2.0, "model": {"name": "vae", "latent_dim": 8},
            "data": {"name": "mnist"}}
  (tmp_path / "config.json").write_text(json.dumps(config))
  record = run_records.run_record(tmp_path)
  assert record["test"] == [{"step": 100, "neg_elbo": 110.5, "kl": 20.0, "kl_g1": 5.0},
                            {"step": 200, "neg_elbo": 99.25, "neg_iwae": 97.0, "loss": 97.0, "train_s": 12.5}]
  assert record["config"]["model.latent_dim"] == 8 and record["config"]["data.name"] == "mnist"
  assert record["config"]["beta"] == 2.0 and record["config"]["seed"] == 3
  assert record["config"]["model.class_prior"] is None  # absent from an older run's config
