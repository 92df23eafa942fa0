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


def test_an_abandoned_failed_read_task_prints_no_traceback(tmp_path):
  """asyncio logs "Task exception was never retrieved" when an abandoned failing task is collected
  (Orbax leaves such TensorStore reads behind a damaged checkpoint); once checkpoints are open it is
  dropped, while other asyncio errors still show."""
  import subprocess
  import sys
  code = f"""
import asyncio, gc, logging
from vae_jax.checkpointing import Checkpoints
Checkpoints({str(tmp_path)!r})
async def fail():
  raise ValueError("OUT_OF_RANGE: a truncated array")
loop = asyncio.new_event_loop()
task = loop.create_task(fail())
loop.run_until_complete(asyncio.sleep(0.01))
del task
gc.collect()
logging.getLogger("asyncio").error("another asyncio error")
"""
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert "Traceback" not in proc.stderr and "never retrieved" not in proc.stderr, proc.stderr
  assert "another asyncio error" in proc.stderr
