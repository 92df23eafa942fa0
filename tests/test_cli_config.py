"""--config by name or path from any directory, --print_config, and --workdir checked up front.

Bad input must give exit status 2, one line `error: ...` on stderr, no
traceback, and create or change nothing.
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from test_cli import TINY, assert_user_error, run, tree_digest

from vae_jax import cli
from vae_jax.errors import UserError


def run_in(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
  """`script` of the repository run from `cwd` (as `run` does, but not from the repository)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1 "
             "--xla_backend_optimization_level=0", JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


def printed_config(proc: subprocess.CompletedProcess) -> dict:
  assert proc.returncode == 0, proc.stderr[-2000:]
  return json.loads(proc.stdout)


def file_config(name: str, **overrides) -> dict:
  """configs/<name>.py's get_config(), loaded here from the file, as JSON, with `overrides`
  ("model.latent_dim": 7) applied: what --print_config must print for it."""
  config = importlib.import_module(f"configs.{name}").get_config()
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    target = config
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return json.loads(json.dumps(config.to_dict()))


def write_config(path: Path, body: str) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("from vae_jax.config import base_config\n\n" + body)
  return path


# --- --config: a name, a path from the current directory, a path from the repository -----------

def test_a_name_from_outside_the_repository(tmp_path):
  config = printed_config(run_in(tmp_path, "train.py", "--config", "mnist_mlp", "--print_config"))
  assert config == file_config("mnist_mlp")
  assert list(tmp_path.iterdir()) == []  # no workdir (runs/default) created


@pytest.mark.parametrize("form", ["--config=configs/mnist_mlp.py", "--config configs/mnist_mlp.py"])
def test_a_repository_path_from_outside_the_repository(tmp_path, form):
  config = printed_config(run_in(tmp_path, "train.py", *form.split(" "), "--print_config"))
  assert config == file_config("mnist_mlp")


def test_no_config_is_the_default(tmp_path):
  """Without --config, train.py runs configs/default.py, every key of it."""
  config = printed_config(run_in(tmp_path, "train.py", "--print_config"))
  assert config == file_config("default")


def test_a_path_from_the_current_directory_comes_before_the_repository(tmp_path):
  write_config(tmp_path / "configs" / "mnist_mlp.py",
               "def get_config():\n  c = base_config()\n  c.model.latent_dim = 3\n  return c\n")
  config = printed_config(run_in(tmp_path, "train.py", "--config=configs/mnist_mlp.py",
                                 "--print_config"))
  assert config["model"]["latent_dim"] == 3 and config["data"]["name"] == "shapes"


def test_an_absolute_path_with_a_suffix_argument(tmp_path):
  path = write_config(tmp_path / "elsewhere" / "sized.py",
                      "def get_config(arg):\n  c = base_config()\n  c.model.latent_dim = int(arg)\n"
                      "  return c\n")
  config = printed_config(run_in(tmp_path, "train.py", f"--config={path}:9", "--print_config"))
  assert config["model"]["latent_dim"] == 9
  relative = printed_config(run_in(tmp_path / "elsewhere", "train.py", "--config=sized.py:11",
                                   "--print_config"))
  assert relative["model"]["latent_dim"] == 11


def test_an_override_is_in_the_printed_config(tmp_path):
  config = printed_config(run_in(tmp_path, "train.py", "--config=mnist_mlp",
                                 "--config.model.latent_dim=7", "--print_config"))
  assert config == file_config("mnist_mlp", **{"model.latent_dim": 7})


def test_print_config_reads_no_data_and_creates_no_workdir(tmp_path):
  wd = tmp_path / "run"
  proc = run("train.py", f"--workdir={wd}", "--config=mnist_mlp", "--config.data.dir=/nonexistent",
             "--print_config")
  assert json.loads(proc.stdout)["data"]["dir"] == "/nonexistent"
  assert not wd.exists()


@pytest.mark.parametrize("value", ["nosuch", "configs/nosuch.py", "nosuch:arg", ""])
def test_an_unknown_config_lists_the_names(tmp_path, value):
  proc = run_in(tmp_path, "train.py", f"--config={value}", f"--workdir={tmp_path / 'run'}")
  assert_user_error(proc, "mnist_mlp", "default")
  assert list(tmp_path.iterdir()) == []


def test_a_config_that_fails_to_load_is_one_line_without_its_traceback(tmp_path):
  proc = run_in(tmp_path, "train.py", "--config=mnist_mlp:unexpected", "--print_config")
  assert_user_error(proc, "get_config")


def test_help_mentions_print_config_and_names():
  proc = run("train.py", "--help")
  assert proc.returncode == 0
  assert "--print_config" in proc.stdout and "config name" in proc.stdout
  assert "mnist_mlp" in proc.stdout


def test_config_names_are_those_of_the_repository():
  names = cli.config_names()
  assert "mnist_mlp" in names and "default" in names and "__init__" not in names


# --- --workdir: checked before anything is done ------------------------------------------------

def test_a_workdir_that_is_a_file(tmp_path):
  f = tmp_path / "file"
  f.write_text("keep")
  assert_user_error(run("train.py", f"--workdir={f}", *TINY, check=False), str(f), "not a directory")
  assert f.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_workdir_under_a_file(tmp_path):
  f = tmp_path / "file"
  f.write_text("keep")
  proc = run("train.py", f"--workdir={f / 'sub' / 'run'}", *TINY, check=False)
  assert_user_error(proc, str(f), "not a directory")
  assert f.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
@pytest.mark.parametrize("sub", ["", "new/run"])
def test_a_read_only_workdir(tmp_path, sub):
  ro = tmp_path / "ro"
  ro.mkdir()
  (ro / "x").write_text("keep")
  before = tree_digest(ro)
  ro.chmod(0o555)
  try:
    proc = run("train.py", f"--workdir={ro / sub}", *TINY, check=False)
  finally:
    ro.chmod(0o755)
  assert_user_error(proc, str(ro), "not writable")
  assert tree_digest(ro) == before and sorted(p.name for p in ro.iterdir()) == ["x"]


@pytest.mark.parametrize("sub", ["", "new/run"])
def test_check_workdir_asks_for_write_access(tmp_path, monkeypatch, sub):
  """In-process, so that it runs as root as well: the directory that would be written to is refused."""
  real_access = os.access
  monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
  with pytest.raises(UserError, match="not writable"):
    cli.check_workdir(tmp_path / sub)
  assert list(tmp_path.iterdir()) == []


def test_check_workdir_accepts_new_and_existing_directories(tmp_path):
  assert cli.check_workdir(tmp_path) == tmp_path
  assert cli.check_workdir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
  assert list(tmp_path.iterdir()) == []


def test_check_workdir_refuses_a_broken_link(tmp_path):
  (tmp_path / "link").symlink_to(tmp_path / "missing")
  with pytest.raises(UserError, match="broken symbolic link"):
    cli.check_workdir(tmp_path / "link" / "run")
