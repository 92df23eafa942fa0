"""Flag parsing for the command-line scripts: any mistake is one error line, exit 2."""

from __future__ import annotations

import sys
from typing import Sequence

from absl import flags

from vae_jax.errors import UserError


def parse_flags(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
  """Parses argv into `flag_values`; unknown flags, bad values and bad config keys raise UserError."""
  try:
    rest = flag_values(list(argv))
  except flags.Error as e:
    raise UserError(f"{e} (see --helpfull)") from None
  except (KeyError, AttributeError, TypeError, ValueError) as e:  # ml_collections override errors
    raise UserError(f"bad config override: {e}") from None
  if len(rest) > 1:
    raise UserError(f"unexpected arguments {rest[1:]}; flags look like --name=value")
  return rest


def load_config_flag(holder) -> object:
  """The value of a config_flags flag; errors in the config file become UserError."""
  try:
    return holder.value
  except (KeyError, AttributeError, TypeError, ValueError, flags.Error) as e:
    raise UserError(f"bad config: {e}") from None
