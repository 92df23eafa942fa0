"""vae_jax.errors: exception messages flattened to one line, and the CLI wrapper."""

import pytest

from vae_jax.errors import UserError, one_line, run_cli


def test_one_line_flattens_unwraps_and_truncates():
  assert one_line(ValueError("a\n  b\tc")) == "a b c"
  assert one_line(AttributeError(KeyError("'nme'\nDid you mean"))) == "'nme' Did you mean"
  assert one_line(KeyError("k")) == "k"  # not "'k'"
  assert one_line(OSError()) == "OSError"
  long = one_line(ValueError("x" * 500), limit=50)
  assert len(long) == 50 and long.endswith("...")


def test_run_cli_prints_one_line_and_exits_2(capsys):
  def main():
    raise UserError("bad\ninput")
  with pytest.raises(SystemExit) as exit_info:
    run_cli(main)
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == "error: bad input\n"
