"""DIR/metrics.jsonl: one JSON object per line, appended and flushed as training goes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def _plain(v: Any) -> Any:
  try:
    f = float(v)
  except (TypeError, ValueError):
    return v
  if isinstance(v, (bool, int)) or (hasattr(v, "dtype") and "int" in str(v.dtype)):
    return int(v)
  return f if math.isfinite(f) else str(f)  # JSON has no NaN; keep it readable


class MetricsLog:
  """Appends records to `path`; with `enabled=False` (non-primary hosts) writes nothing."""

  def __init__(self, path: str | os.PathLike, *, enabled: bool = True):
    self.path = Path(path)
    self.enabled = enabled

  def write(self, record: dict[str, Any]) -> None:
    if not self.enabled:
      return
    line = json.dumps({k: _plain(v) for k, v in record.items()})
    with self.path.open("a") as f:
      f.write(line + "\n")


def drop_after(path: str | os.PathLike, step: int) -> int:
  """Rewrites `path` (atomically) without the records of steps after `step`; returns how many went.

  A resumed run restarts at its checkpoint's step, so records written past it by the process
  that stopped would otherwise appear twice.
  """
  path = Path(path)
  if not path.exists():
    return 0
  lines = [line for line in path.read_text().splitlines() if line.strip()]
  kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
  if len(kept) < len(lines):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
  return len(lines) - len(kept)


def read(path: str | os.PathLike) -> list[dict[str, Any]]:
  """All records of a metrics.jsonl file."""
  with Path(path).open() as f:
    return [json.loads(line) for line in f if line.strip()]
