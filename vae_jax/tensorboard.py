"""Optional TensorBoard event files for a run, written with tensorboardX (no TensorFlow needed).

`TensorBoardLog(logdir).write(record)` takes the same records as `metrics_log.MetricsLog`
and logs each finite numeric value as the scalar "{split}/{key}" at step `record["step"]`;
view them with `tensorboard --logdir DIR`. tensorboardX is an optional dependency:
`pip install -e ".[tensorboard]"`.
"""

from __future__ import annotations

import os
from typing import Any

from vae_jax.curves import finite
from vae_jax.errors import UserError

_MISSING = ('TensorBoard logging needs tensorboardX, which is not installed: '
            'pip install -e ".[tensorboard]" (or pip install tensorboardX)')


def _summary_writer_class():
  """tensorboardX.SummaryWriter, or a UserError naming the install command."""
  try:
    from tensorboardX import SummaryWriter
  except ImportError as e:
    raise UserError(_MISSING) from e
  return SummaryWriter


class TensorBoardLog:
  """Scalars of metrics records, as TensorBoard event files in `logdir`.

  With `enabled=False` (non-primary hosts) nothing is written and no file is
  created. A missing tensorboardX raises `UserError` on every host alike, so a
  multi-host run fails everywhere instead of hanging.
  """

  def __init__(self, logdir: str | os.PathLike, enabled: bool = True, *, flush_secs: int = 10):
    writer_class = _summary_writer_class()
    self.logdir = os.fspath(logdir)
    self.enabled = enabled
    self._writer = writer_class(logdir=self.logdir, flush_secs=flush_secs) if enabled else None

  def write(self, record: dict[str, Any]) -> None:
    """Logs each finite numeric value but `step` as "{split}/{key}" at `record["step"]`.

    Strings ("nan", "inf", names), bools and non-finite numbers are skipped.
    """
    if self._writer is None:
      return
    step = int(record["step"])
    split = record.get("split", "metrics")
    for key, v in record.items():
      value = finite(v)
      if key not in ("step", "split") and value is not None:
        self._writer.add_scalar(f"{split}/{key}", value, step)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    """Flushes and closes the event file; later writes are ignored. Safe to call twice."""
    if self._writer is not None:
      self._writer.close()
      self._writer = None

  def __enter__(self) -> "TensorBoardLog":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
