"""The one exception type for user mistakes, and the CLI wrapper that prints it.

A `UserError` means the input was wrong (a missing dataset, a corrupt image, a
bad config value), not the program. Command-line entry points catch it and
print one line, ``error: <message>``, to stderr and exit with status 2, with no
traceback. Messages name the problem and the fix.
"""

from __future__ import annotations

import sys
from typing import Callable, NoReturn


class UserError(Exception):
  """An input the user can fix. The message is shown as-is, on one line."""


def exit_with(message: str, code: int = 2) -> NoReturn:
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  raise SystemExit(code)


def run_cli(main: Callable[[], None]) -> None:
  """Runs `main`, turning a `UserError` into one line on stderr and exit 2."""
  try:
    main()
  except UserError as e:
    exit_with(str(e))
