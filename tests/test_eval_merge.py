"""An evaluation in parts (--examples START:END) merges (--merge) into the whole evaluation's figures.

Each example keeps its index in the split inside a part (`Window`), so its
binarisation and importance samples are those of the whole evaluation: the
merged IS-NLL, its standard error and the ELBO terms match a single evaluation
of all examples to float rounding.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, tiny_config
from test_cli import assert_user_error
from vae_jax import data, eval_merge, evaluate, inference, trainer
from vae_jax.data.source import ArraySource, Window, first_index, gather_examples, head
from vae_jax.errors import UserError


def test_a_window_reads_its_parents_examples_and_labels_at_their_indices():
  rng = np.random.default_rng(0)
  parent = ArraySource(rng.integers(0, 256, (20, 4, 4, 1), dtype=np.uint8), rng.integers(0, 10, 20))
  window = Window(parent, 5, 17)
  assert len(window) == 12 and first_index(window) == 5 and first_index(parent) == 0
  np.testing.assert_array_equal(window[3], parent[8])
  np.testing.assert_array_equal(window[-1], parent[16])
  images, labels = gather_examples(window, [0, 11, 4])
  np.testing.assert_array_equal(images, parent.images_NHWC[[5, 16, 9]])
  np.testing.assert_array_equal(labels, parent.labels[[5, 16, 9]])
  assert window.labels[2] == parent.labels[7] and len(window.labels) == 12
  part = head(window, 4)
  assert first_index(part) == 5 and len(part) == 4
  batches = list(data.eval_batches(window, 5))
  got = np.concatenate([b["image"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(got, parent.images_NHWC[5:17])
  with pytest.raises(IndexError):
    window[12]
  with pytest.raises(ValueError):
    Window(parent, 15, 21)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  wd = tmp_path_factory.mktemp("merge") / "run"
  trainer.train_and_evaluate(tiny_config(num_train_steps=20), wd)
  return wd


def test_two_parts_merge_into_the_whole_evaluation(run_dir):
  metrics = ["is_nll", "elbo"]
  whole = evaluate.evaluate_run(run_dir, metrics, k=30, chunk=7)
  a = evaluate.evaluate_run(run_dir, metrics, k=30, chunk=7, examples=(0, 60))
  b = evaluate.evaluate_run(run_dir, metrics, k=30, chunk=7, examples=(60, 150))
  assert whole["examples"] == [0, 150] and b["examples"] == [60, 150] and b["num_examples"] == 90
  merged = eval_merge.merge([b, a], ["b.json", "a.json"])  # any order
  assert merged["examples"] == [0, 150] and merged["num_examples"] == 150
  assert merged["is_nll_num_examples"] == 150 and merged["merged_from"] == ["a.json", "b.json"]
  # Float rounding only, within 1e-6 (the stderr was off by 7e-6, before each batch's sum of squares was
  # taken about its own mean: is_nll.mean_and_stderr). Had the second part numbered its examples from 0,
  # they would draw other samples: measured off by 8e-6 (is_nll), 1e-3 (neg_elbo), 2e-2 (stderr).
  for key in ("is_nll", "is_nll_bits_per_dim", "neg_elbo", "recon", "kl", "bits_per_dim"):
    assert merged[key] == pytest.approx(whole[key], rel=1e-6), key
  assert merged["is_nll_stderr"] == pytest.approx(whole["is_nll_stderr"], rel=1e-6)


def test_merge_refuses_parts_that_do_not_make_one_evaluation():
  base = {"workdir": "w", "step": 5, "params": "raw", "metrics": ["is_nll"], "k": 10, "wall_s": 1.0,
          "device": "cpu", "is_nll": 90.0, "is_nll_stderr": 1.0, "is_nll_k": 10, "is_nll_bits_per_dim": 0.1,
          "is_nll_samples_per_s": 100.0, "is_nll_num_examples": 50}
  a = dict(base, examples=[0, 50], num_examples=50)
  cases = {"adjacent": [a, dict(base, examples=[40, 90], num_examples=50)],
           "differ in k": [a, dict(base, examples=[50, 100], num_examples=50, k=20)],
           "cannot be merged": [dict(a, metrics=["is_nll", "active_units"]),
                                dict(base, metrics=["is_nll", "active_units"], examples=[50, 100], num_examples=50)],
           "at least two": [a]}
  for message, records in cases.items():
    with pytest.raises(UserError, match=message):
      eval_merge.merge(records, [f"{i}.json" for i in range(len(records))])


def test_bad_example_ranges_are_user_errors(run_dir):
  for text, fragment in [("9:3", "START < END"), ("a:b", "expected START:END"), ("1:2:3", "expected")]:
    with pytest.raises(UserError, match=fragment):
      evaluate.parse_examples(text)
  for kwargs, fragment in [({"examples": (0, 151)}, "has 150 examples"),
                           ({"examples": (0, 50), "num_examples": 5}, "pass one")]:
    with pytest.raises(UserError, match=fragment):
      evaluate.evaluate_run(run_dir, ["is_nll"], **kwargs)
  with pytest.raises(UserError, match="whole test"):
    evaluate.evaluate_run(run_dir, ["fid"], examples=(0, 50))


def test_merge_on_the_command_line(run_dir, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")

  def cli(*args):
    return subprocess.run([sys.executable, "-m", "vae_jax.evaluate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  a, b, bad, whole = (tmp_path / f"{n}.json" for n in ("a", "b", "bad", "all"))
  bad.write_text("[1, 2]")
  proc = cli(f"--merge={bad},{tmp_path / 'none.json'}", f"--output={whole}")
  assert_user_error(proc, "not a record")
  assert not whole.exists()
  for path, part in ((a, (0, 100)), (b, (100, 150))):
    path.write_text(json.dumps(evaluate.evaluate_run(run_dir, ["is_nll"], k=5, examples=part)))
  proc = cli(f"--merge={a},{b}", f"--output={whole}")
  assert proc.returncode == 0, proc.stderr
  record = json.loads(whole.read_text())
  assert record["examples"] == [0, 150] and record["is_nll_num_examples"] == 150


def test_parts_of_copies_of_a_run_merge_and_other_parameters_do_not(run_dir, tmp_path):
  """The parts' parameters are compared by digest, not by folder: a copy of the run (another
  machine) merges with the original; parameters with any one value changed by one ulp have
  another digest, and their part is refused."""
  copy = tmp_path / "copy"
  shutil.copytree(run_dir, copy)
  a = evaluate.evaluate_run(run_dir, ["is_nll"], k=5, examples=(0, 100))
  b = evaluate.evaluate_run(copy, ["is_nll"], k=5, examples=(100, 150))
  assert a["params_digest"] == b["params_digest"] and a["workdir"] != b["workdir"]
  merged = eval_merge.merge([a, b], ["a.json", "b.json"])
  assert merged["params_digest"] == a["params_digest"] and merged["num_examples"] == 150
  run = inference.load_trained(run_dir)
  assert inference.params_digest(run.params) == a["params_digest"]
  leaves, tree = jax.tree_util.tree_flatten(run.params)
  for i in (0, len(leaves) - 1):
    changed = list(leaves)
    changed[i] = np.asarray(leaves[i]).copy()
    changed[i].flat[-1] = np.nextafter(changed[i].flat[-1], np.float32(np.inf))
    other = inference.params_digest(jax.tree_util.tree_unflatten(tree, changed))
    assert other != a["params_digest"]
  with pytest.raises(UserError, match="differ in params_digest"):
    eval_merge.merge([a, dict(b, params_digest=other)], ["a.json", "c.json"])
  # A record from before digests: only its own folder vouches for its parameters.
  old_b = {key: value for key, value in b.items() if key != "params_digest"}
  with pytest.raises(UserError, match="differ in workdir"):
    eval_merge.merge([a, old_b], ["a.json", "b.json"])
  assert "params_digest" not in eval_merge.merge([a, dict(old_b, workdir=a["workdir"])], ["a", "b"])
