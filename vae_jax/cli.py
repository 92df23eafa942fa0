"""Flag parsing for the command-line scripts: any mistake is one error line, exit 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import ml_collections

from absl import flags
from ml_collections import config_flags

from vae_jax.errors import UserError, one_line


HELP_FLAGS = ("-h", "--help", "-help", "--helpfull", "--helpshort", "-?")


def print_help(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The main script's docstring, its flags with their meanings, and where the config keys are."""
  main = sys.modules.get("__main__")
  print((main.__doc__ or "").strip() + "\n")
  print("flags:")
  print(flag_values.main_module_help() or "  (none)")
  for name in _CONFIG_FLAGS:
    if name not in flag_values:
      continue
    root = _CONFIG_FLAGS[name]
    print(f"  --{name}: a config name, one of {', '.join(config_names(root))} (the files in "
          f"{root / 'configs'}), or a path to a file with get_config(), relative to the current "
          f"directory or to {root} (default: {flag_values[name].config_filename})")
    print(f"  --{name}.KEY=VALUE: override any key of vae_jax/config.py:base_config(), where every "
          "key has its default and meaning (README, 'Training')")
    print(f"  --print_config: print the {name} (after the --{name}.KEY=VALUE overrides) as JSON "
          "and exit, without reading data or touching any directory")


def parse_flags(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
  """Parses argv into `flag_values`; unknown flags, bad values and bad config keys raise UserError.

  -h / --help (and --helpfull) print the script's usage and flags and exit 0.
  """
  if any(arg in HELP_FLAGS for arg in argv[1:]):
    print_help(flag_values)
    raise SystemExit(0)
  try:
    rest = flag_values(list(argv))
  except flags.Error as e:
    raise UserError(f"{_without_traceback(str(e))} (see --helpfull)") from None
  except (KeyError, AttributeError, TypeError, ValueError) as e:  # ml_collections override errors
    raise UserError(f"bad config override: {one_line(e)}") from None
  except Exception as e:  # config_flags loads the config file here: its own errors, any type
    raise UserError(f"cannot load the config: {one_line(e)}") from None
  if len(rest) > 1:
    raise UserError(f"unexpected arguments {rest[1:]}; flags look like --name=value")
  _print_config_if_asked(flag_values)
  return rest


def _without_traceback(message: str) -> str:
  """`message` with an embedded traceback (config_flags adds one) cut to its last line, the error."""
  head, found, tail = message.partition("Traceback (most recent call last):")
  lines = [line.strip() for line in tail.splitlines() if line.strip()]
  return head + lines[-1] if found and lines else message


def _print_config_if_asked(flag_values: flags.FlagValues) -> None:
  """With --print_config: prints each config flag's parsed value as JSON to stdout and exits 0."""
  if "print_config" not in flag_values or not flag_values["print_config"].value:
    return
  for name in _CONFIG_FLAGS:
    if name in flag_values:
      print(config_value(flag_values[name]).to_json_best_effort(indent=2))
  raise SystemExit(0)


def config_value(holder) -> ml_collections.ConfigDict:
  """The parsed config; a config file that fails to load becomes UserError."""
  try:
    return holder.value
  except Exception as e:  # the file's own error, re-raised by config_flags
    cause = e.__cause__ or e
    raise UserError(f"cannot load the config: {one_line(cause)}") from None


# The config flags defined by define_config_flag: name -> the root whose configs/ holds its names.
_CONFIG_FLAGS: dict[str, Path] = {}
REPO_ROOT = Path(__file__).resolve().parents[1]


def config_names(root: Path = REPO_ROOT) -> list[str]:
  """The config names: the files ROOT/configs/NAME.py, sorted, without _private ones."""
  return sorted(p.stem for p in (root / "configs").glob("[!_]*.py"))


def _config_candidates(path: str, root: Path) -> list[Path]:
  """Where a --config value may point, in order: a name in ROOT/configs (a value without a
  directory or .py), a path from the current directory, a path from ROOT."""
  if not path:
    return []
  candidates = []
  if os.sep not in path and "/" not in path and not path.endswith(".py"):
    candidates.append(root / "configs" / f"{path}.py")
  candidates.append(Path(path))
  if not Path(path).is_absolute():
    candidates.append(root / path)
  return candidates


def resolve_config(value: str, root: Path = REPO_ROOT, name: str = "config") -> str:
  """The absolute path of the config file `value` names (see _config_candidates), with any
  ``:suffix`` (the argument passed to get_config) kept; UserError, listing the names, if none."""
  path, colon, suffix = value.partition(":")
  for candidate in _config_candidates(path, root):
    if candidate.is_file():
      return str(candidate.resolve()) + colon + suffix
  raise UserError(
      f"--{name}={value} not found: it is neither a config name nor a file relative to the current "
      f"directory or to {root}; pass --{name}=NAME, one of: {', '.join(config_names(root))} "
      f"(the files in {root / 'configs'}), or a path to a config file")


def _resolve_config_in_argv(argv: list[str], name: str, root: Path) -> None:
  """Replaces, in place, each value of --NAME=X, --NAME X (or one dash) in argv by resolve_config(X)."""
  for i in range(1, len(argv)):
    for flag in (f"--{name}", f"-{name}"):
      if argv[i].startswith(flag + "="):
        argv[i] = flag + "=" + resolve_config(argv[i][len(flag) + 1:], root, name)
      elif argv[i] == flag and i + 1 < len(argv):
        argv[i + 1] = resolve_config(argv[i + 1], root, name)


def define_config_flag(default_path: str, name: str = "config", root: Path | None = None):
  """`config_flags.DEFINE_config_file`, which reads the file and applies the
  ``--config.KEY=VALUE`` overrides in argv as it is defined; its errors become UserError.

  The value of --NAME in sys.argv is first resolved (resolve_config; names and relative paths are
  looked up under ROOT, by default the repository holding this package) and written back, since
  config_flags reads sys.argv itself. Also defines --print_config (handled by parse_flags).
  """
  root = Path(root).resolve() if root is not None else REPO_ROOT
  _resolve_config_in_argv(sys.argv, name, root)
  _CONFIG_FLAGS[name] = root
  if "print_config" not in flags.FLAGS:
    flags.DEFINE_bool("print_config", False, "print the resolved config as JSON and exit")
  default_path = resolve_config(default_path, root, name)
  try:
    return config_flags.DEFINE_config_file(name, default_path, "config file with a get_config()")
  except (KeyError, AttributeError) as e:
    raise UserError(f"unknown config key: {one_line(e)}; the valid keys are those of "
                    "vae_jax/config.py:base_config()") from None
  except Exception as e:  # a missing or broken config file: absl/ml_collections raise many types
    raise UserError(f"cannot load --{name}: {one_line(e)}") from None


def _nearest_existing(path: Path) -> Path:
  """`path` or its nearest ancestor that exists as a directory entry (a broken link counts)."""
  while not os.path.lexists(path) and path.parent != path:
    path = path.parent
  return path


def check_workdir(path: str | os.PathLike) -> Path:
  """`path` (with ~ expanded) if it can be a run directory; else UserError, and nothing is created.

  It must be an existing writable directory, or not exist yet with its nearest existing ancestor
  a writable directory (no file, broken link or unwritable directory on the way).
  """
  if not str(path):
    raise UserError("--workdir is empty; pass the run directory, e.g. --workdir=runs/NAME")
  workdir = Path(path).expanduser()
  existing = _nearest_existing(workdir.absolute())
  where = "" if existing == workdir.absolute() else f": its parent {existing}"
  if not existing.exists():
    raise UserError(f"--workdir={path}{where} is a broken symbolic link")
  if not existing.is_dir():
    raise UserError(f"--workdir={path}{where} is a file, not a directory; pass a directory")
  if not os.access(existing, os.W_OK | os.X_OK):
    what = f" cannot be created{where}" if where else ""
    raise UserError(f"--workdir={path}{what} is not writable; pass a writable directory")
  for sub in ("checkpoints", "samples"):  # what a run writes into, when they exist already
    inner = workdir / sub
    if inner.is_dir() and not os.access(inner, os.W_OK | os.X_OK):
      raise UserError(f"--workdir={path}: {inner} is not writable; fix its permissions or pass "
                      "another --workdir")
  return workdir
