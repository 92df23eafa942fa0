"""Flag parsing for the command-line scripts: any mistake is one error line, exit 2."""

from __future__ import annotations

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
  if "config" in flag_values:
    print("  --config: a config file with get_config(), e.g. configs/mnist_mlp.py "
          f"(default: {flag_values['config'].config_filename})")
    print("  --config.KEY=VALUE: override any key of vae_jax/config.py:base_config(), where every key "
          "has its default and meaning (README, 'Training')")


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
    raise UserError(f"{e} (see --helpfull)") from None
  except (KeyError, AttributeError, TypeError, ValueError) as e:  # ml_collections override errors
    raise UserError(f"bad config override: {one_line(e)}") from None
  except Exception as e:  # config_flags loads the config file here: its own errors, any type
    raise UserError(f"cannot load the config: {one_line(e)}") from None
  if len(rest) > 1:
    raise UserError(f"unexpected arguments {rest[1:]}; flags look like --name=value")
  return rest


def _config_path_in_argv(argv: Sequence[str], name: str) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def config_value(holder) -> ml_collections.ConfigDict:
  """The parsed config; a config file that fails to load becomes UserError."""
  try:
    return holder.value
  except Exception as e:  # the file's own error, re-raised by config_flags
    cause = e.__cause__ or e
    raise UserError(f"cannot load the config: {one_line(cause)}") from None


def define_config_flag(default_path: str, name: str = "config"):
  """`config_flags.DEFINE_config_file`, which reads the file and applies the
  ``--config.KEY=VALUE`` overrides in argv as it is defined; its errors become UserError."""
  path = _config_path_in_argv(sys.argv, name) or default_path
  if not Path(path.split(":")[0]).is_file():
    raise UserError(f"config file {path} not found; pass --{name}=configs/NAME.py "
                    f"(one of: {', '.join(sorted(p.name for p in Path('configs').glob('[!_]*.py')))})")
  try:
    return config_flags.DEFINE_config_file(name, default_path, "config file with a get_config()")
  except (KeyError, AttributeError) as e:
    raise UserError(f"unknown config key: {one_line(e)}; the valid keys are those of "
                    "vae_jax/config.py:base_config()") from None
  except Exception as e:  # a missing or broken config file: absl/ml_collections raise many types
    raise UserError(f"cannot load --{name}: {one_line(e)}") from None
