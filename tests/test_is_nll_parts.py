"""benchmarks/is_nll_parts.py: an evaluation in parts that stops and goes on gives the whole
evaluation's figures, and refuses parts of other parameters."""

import importlib.util
import json

import numpy as np
import pytest

from conftest import REPO, tiny_config
from vae_jax import evaluate, trainer
from vae_jax.errors import UserError


def _script():
  spec = importlib.util.spec_from_file_location("is_nll_parts", REPO / "benchmarks" / "is_nll_parts.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


is_nll_parts = _script()


def test_part_ranges_cover_the_split_once_in_order():
  assert is_nll_parts.part_ranges(150, 60) == [(0, 60), (60, 120), (120, 150)]
  assert is_nll_parts.part_ranges(120, 60) == [(0, 60), (60, 120)]
  for total, size in [(1, 7), (10_000, 128), (97, 10)]:
    parts = is_nll_parts.part_ranges(total, size)
    covered = np.concatenate([np.arange(a, b) for a, b in parts])
    np.testing.assert_array_equal(covered, np.arange(total))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("parts")
  trainer.train_and_evaluate(tiny_config(num_train_steps=20), root / "a")
  trainer.train_and_evaluate(tiny_config(num_train_steps=20, seed=1), root / "b")
  return root


def test_stopped_parts_go_on_and_merge_into_the_whole_evaluation(runs, tmp_path):
  parts, out = tmp_path / "parts", tmp_path / "all.json"
  argv = ["--workdir", str(runs / "a"), "--k", "12", "--part_size", "60", "--parts_dir", str(parts),
          "--output", str(out)]
  assert is_nll_parts.main(argv + ["--max_s", "1e-9"]) == is_nll_parts.PARTS_LEFT  # one part, then stops
  assert sorted(p.name for p in parts.iterdir()) == ["0_60.json"] and not out.exists()
  assert is_nll_parts.main(argv) == 0
  assert sorted(p.name for p in parts.iterdir()) == ["0_60.json", "120_150.json", "60_120.json"]
  merged = json.loads(out.read_text())
  whole = evaluate.evaluate_run(runs / "a", ["is_nll", "elbo"], k=12)
  assert merged["examples"] == [0, 150] and merged["num_examples"] == 150
  for key in ("is_nll", "is_nll_stderr", "neg_elbo"):
    np.testing.assert_allclose(merged[key], whole[key], rtol=1e-5)


def test_a_part_of_other_parameters_is_refused(runs, tmp_path):
  parts, out = tmp_path / "parts", tmp_path / "all.json"
  common = ["--k", "4", "--part_size", "100", "--parts_dir", str(parts), "--output", str(out)]
  assert is_nll_parts.main(["--workdir", str(runs / "b")] + common + ["--max_s", "1e-9"]) == is_nll_parts.PARTS_LEFT
  with pytest.raises(UserError, match="params_digest"):
    is_nll_parts.main(["--workdir", str(runs / "a")] + common)
  assert not out.exists()
