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


def read(path: str | os.PathLike) -> list[dict[str, Any]]:
  """All records of a metrics.jsonl file."""
  with Path(path).open() as f:
    return [json.loads(line) for line in f if line.strip()]
