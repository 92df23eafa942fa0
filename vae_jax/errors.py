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


def one_line(e: BaseException, limit: int = 200) -> str:
  """An exception's message on one line, for embedding in a UserError or warning.

  Unwraps exceptions wrapped as another's first argument (ml_collections raises
  AttributeError(KeyError(...))) and KeyError's quoting; falls back to the type name.
  """
  while e.args and isinstance(e.args[0], BaseException):
    e = e.args[0]
  text = e.args[0] if isinstance(e, KeyError) and e.args else e
  text = " ".join(str(text).split()) or type(e).__name__
  return text if len(text) <= limit else text[: limit - 3] + "..."


def exit_with(message: str, code: int = 2) -> NoReturn:
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  raise SystemExit(code)


def _drop_closed_loop_noise(previous: Callable) -> Callable:
  """An unraisable-exception hook that drops asyncio's "Event loop is closed" and passes the rest on.

  Reading a damaged checkpoint, TensorStore's I/O threads still call back into the asyncio loop
  Orbax has already closed; each callback printed a traceback (up to hundreds of lines) although
  the failure itself is reported as one warning.
  """
  def hook(unraisable) -> None:
    if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
      return
    previous(unraisable)
  return hook


def run_cli(main: Callable[[], None]) -> None:
  """Runs `main`, turning a `UserError` into one line on stderr and exit 2."""
  sys.unraisablehook = _drop_closed_loop_noise(sys.unraisablehook)
  try:
    main()
  except UserError as e:
    exit_with(str(e))
  except KeyboardInterrupt:  # Ctrl-C outside the trainer's own handling (e.g. while compiling)
    print("interrupted", file=sys.stderr, flush=True)
    raise SystemExit(130) from None
