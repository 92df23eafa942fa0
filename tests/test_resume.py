"""Resume rules (vae_jax/resume.py, checkpointing): what a rerun on a workdir may change, and that
nothing in the workdir is renamed, lost or duplicated by a user's mistake (hashes of the tree)."""

import json
import shutil

import pytest

from conftest import tiny_config
from test_cli import TINY, assert_user_error, run, tree_digest
from vae_jax import inference, metrics_log, resume, trainer
from vae_jax.errors import UserError


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished 20-step run with checkpoints at 10 and 20."""
  wd = tmp_path_factory.mktemp("resume") / "run"
  trainer.train_and_evaluate(tiny_config(num_train_steps=20), wd)
  return wd


@pytest.fixture
def wd(finished, tmp_path):
  copy = tmp_path / "run"
  shutil.copytree(finished, copy)
  return copy


@pytest.mark.parametrize("override, shown", [
    ({"grad_clip_norm": 1.0}, "grad_clip_norm: 0.0 -> 1.0"),
    ({"optimizer": "adamw"}, 'optimizer: "adam" -> "adamw"'),
    ({"lr_schedule": "cosine"}, 'lr_schedule: "constant" -> "cosine"'),
    ({"batch_size": 16}, "batch_size: 32 -> 16"),
    ({"seed": 1}, "seed: 0 -> 1"),
    ({"data.num_train_examples": 256}, "data.num_train_examples: 0 -> 256"),
    ({"data.shapes_num_train": 256}, "data.shapes_num_train: 512 -> 256"),
    ({"model.latent_dim": 3}, "model.latent_dim: 4 -> 3"),
    ({"ema_decay": 0.9}, "ema_decay: 0.0 -> 0.9"),
])
def test_a_change_that_does_not_fit_is_refused_and_touches_nothing(wd, override, shown):
  before = tree_digest(wd)
  with pytest.raises(UserError) as e:
    trainer.train_and_evaluate(tiny_config(num_train_steps=30, **override), wd)
  message = str(e.value)
  assert shown in message and "new --workdir" in message
  assert "num_train_steps" not in message  # a free change is not an objection
  assert "model.hidden" not in message  # only the keys that differ are named
  assert tree_digest(wd) == before


def test_an_opt_in_change_needs_the_flag_and_is_then_recorded(wd):
  before = tree_digest(wd)
  config = tiny_config(num_train_steps=30, learning_rate=1e-4)
  with pytest.raises(UserError, match="learning_rate: 0.001 -> 0.0001.*--allow_config_changes"):
    trainer.train_and_evaluate(config, wd)
  assert tree_digest(wd) == before
  trainer.train_and_evaluate(config, wd, allow_config_changes=True)
  assert json.loads((wd / "config.json").read_text())["learning_rate"] == 1e-4
  (entry,) = [json.loads(line) for line in (wd / "config_history.jsonl").read_text().splitlines()]
  assert entry["resumed_at_step"] == 20
  assert entry["changes"] == {"learning_rate": [0.001, 0.0001], "num_train_steps": [20, 30]}


def test_a_free_change_resumes_and_no_row_is_written_twice(wd, capfd):
  trainer.train_and_evaluate(tiny_config(num_train_steps=30, eval_every=10), wd)
  assert "resuming from step 20" in capfd.readouterr().err
  rows = metrics_log.read(wd / "metrics.jsonl")
  keys = [(r["split"], r["step"]) for r in rows]
  assert len(keys) == len(set(keys))
  assert ("test", 30) in keys and ("train", 30) in keys
  (entry,) = [json.loads(line) for line in (wd / "config_history.jsonl").read_text().splitlines()]
  assert entry["changes"] == {"eval_every": [1000, 10], "num_train_steps": [20, 30]}


def test_rerunning_a_finished_run_changes_nothing_and_says_so(wd, capfd):
  before = tree_digest(wd)
  final = [r for r in metrics_log.read(wd / "metrics.jsonl") if r["split"] == "test"][-1]
  got = trainer.train_and_evaluate(tiny_config(num_train_steps=20), wd)
  assert got == final
  assert "already finished at step 20" in capfd.readouterr().err
  assert tree_digest(wd) == before


def test_rows_written_past_the_restored_checkpoint_are_dropped(wd):
  """A run killed after logging step 20 but before its checkpoint: the rerun restarts at 10 and
  the metrics have each (split, step) once."""
  shutil.rmtree(wd / "checkpoints" / "20")
  assert ("test", 20) in [(r["split"], r["step"]) for r in metrics_log.read(wd / "metrics.jsonl")]
  trainer.train_and_evaluate(tiny_config(num_train_steps=20), wd)
  keys = [(r["split"], r["step"]) for r in metrics_log.read(wd / "metrics.jsonl")]
  assert keys == [("train", 10), ("train", 20), ("test", 20)]


def test_a_params_only_checkpoint_is_never_touched(wd):
  for step_dir in (wd / "checkpoints").iterdir():
    for item in ("opt_state", "rng", "step", "data"):
      shutil.rmtree(step_dir / item)
  before = tree_digest(wd)
  with pytest.raises(UserError, match="holds only params .*training cannot resume"):
    trainer.train_and_evaluate(tiny_config(num_train_steps=30), wd)
  assert tree_digest(wd) == before
  assert inference.load_trained(wd).step == 20  # still there for sampling


def test_a_checkpoint_that_reads_but_does_not_fit_is_an_error_not_corruption(wd, tmp_path):
  """As after a code change: config.json agrees, the saved shapes do not. Nothing is moved aside."""
  other = tmp_path / "other"
  trainer.train_and_evaluate(tiny_config(num_train_steps=20, **{"model.latent_dim": 5}), other)
  shutil.rmtree(wd / "checkpoints")
  shutil.copytree(other / "checkpoints", wd / "checkpoints")
  before = tree_digest(wd)
  with pytest.raises(UserError, match=r"does not fit this run: its params item differs.*\(5,"):
    trainer.train_and_evaluate(tiny_config(num_train_steps=30), wd)
  assert tree_digest(wd) == before
  assert not list((wd / "checkpoints").glob("*unreadable*"))


def test_changed_keys_lists_each_difference_once():
  saved = resume.flatten({"a": 1, "m": {"x": (1, 2), "y": "s"}})
  new = resume.flatten({"a": 1, "m": {"x": [1, 3]}, "z": True})
  assert resume.changed_keys(saved, new) == {"m.x": ([1, 2], [1, 3]), "m.y": ("s", None), "z": (None, True)}


def test_a_key_added_to_the_library_since_the_run_started_is_not_a_change(wd):
  """An older run's config.json lacks keys added later; at their defaults they change nothing."""
  saved = json.loads((wd / "config.json").read_text())
  del saved["kl_free_bits"], saved["model"]["ar_kernel"]
  (wd / "config.json").write_text(json.dumps(saved))
  trainer.train_and_evaluate(tiny_config(num_train_steps=30), wd)
  (entry,) = [json.loads(line) for line in (wd / "config_history.jsonl").read_text().splitlines()]
  assert entry["changes"] == {"num_train_steps": [20, 30]}
  with pytest.raises(UserError, match="kl_free_bits: 0.0 -> 1.0"):  # but a non-default value is one
    trainer.train_and_evaluate(tiny_config(num_train_steps=40, kl_free_bits=1.0), wd)


def test_the_cli_refusal_is_one_line(tmp_path):
  wd = tmp_path / "run"
  run("train.py", f"--workdir={wd}", *TINY)
  before = tree_digest(wd)
  proc = run("train.py", f"--workdir={wd}", *TINY, "--config.learning_rate=0.01", check=False)
  assert_user_error(proc, "learning_rate: 0.001 -> 0.01", "--allow_config_changes")
  assert tree_digest(wd) == before
  run("train.py", f"--workdir={wd}", *TINY, "--config.num_train_steps=30", "--config.learning_rate=0.01",
      "--allow_config_changes")
  assert json.loads((wd / "config.json").read_text())["num_train_steps"] == 30


def test_what_a_killed_process_left_of_its_atomic_writes_is_removed(wd):
  """Temporary files of the run's own writes (a kill between writing and renaming) go on the next
  start; any other file stays."""
  left = [wd / ".curves.png.4242.tmp", wd / "config.json.tmp", wd / "metrics.jsonl.tmp",
          wd / "samples" / ".step_0000020_prior.png.0a1b2c.tmp"]
  mine = [wd / "notes.tmp", wd / "samples" / "mine.png"]
  for path in left + mine:
    path.write_bytes(b"x")
  trainer.train_and_evaluate(tiny_config(num_train_steps=20), wd)  # finished: a no-op otherwise
  assert not [p for p in left if p.exists()]
  assert all(p.exists() for p in mine)
