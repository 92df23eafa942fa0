"""DIR/curves.png: a run's learning curves, drawn from DIR/metrics.jsonl.

One figure, one panel per quantity, each against the training step:

  (a) negative ELBO, nats: train and test `neg_elbo`, and, where the file has
      them, test `is_nll` (importance-sampled NLL) and train/test `neg_iwae`;
  (b) KL, nats: train and test `kl`;
  (c) throughput: train `images_per_s`.

A series whose key no record has is left out, and a panel with no series is
left out. Non-finite values (written as the strings "nan", "inf") are skipped,
as are lines that do not parse (a line cut short by a killed process).
`series(rows)` is the data exactly as plotted; `write_curves` draws it with
Matplotlib's Agg canvas (no display, no pyplot state) and replaces the PNG
atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

# (title, y label, series names); a series name is "{split}/{key}".
PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
  ("negative ELBO", "nats", ("train/neg_elbo", "test/neg_elbo", "test/is_nll",
                             "train/neg_iwae", "test/neg_iwae")),
  ("KL", "nats", ("train/kl", "test/kl")),
  ("GAN losses", "nats", ("train/d_loss", "train/g_loss")),
  ("sample quality", "FID", ("test/fid",)),
  ("throughput", "images/s", ("train/images_per_s",)),
)

Series = tuple[list[int], list[float]]


def finite(v: Any) -> float | None:
  """`v` as a float if it is a finite number (not a bool or a string), else None."""
  if isinstance(v, (bool, str)):
    return None
  try:
    f = float(v)
  except (TypeError, ValueError):
    return None
  return f if math.isfinite(f) else None


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The JSON objects of a metrics.jsonl file; a missing file gives [], bad lines are skipped."""
  try:
    lines = Path(path).read_text().splitlines()
  except FileNotFoundError:
    return []
  rows = []
  for line in lines:
    try:
      row = json.loads(line)
    except ValueError:
      continue
    if isinstance(row, dict):
      rows.append(row)
  return rows


def series(rows: list[dict[str, Any]]) -> dict[str, Series]:
  """The plotted data: {"split/key": (steps, values)} for every series of `PANELS`.

  Keeps a point only where the row has an integer-valued `step` and a finite
  value; a series without any point is absent. Points keep the file's order.
  """
  wanted = {name for _, _, names in PANELS for name in names}
  out: dict[str, Series] = {}
  for row in rows:
    step = finite(row.get("step"))
    if step is None:
      continue
    for key, v in row.items():
      name, value = f"{row.get('split')}/{key}", finite(v)
      if name in wanted and value is not None:
        steps, values = out.setdefault(name, ([], []))
        steps.append(int(step))
        values.append(value)
  return out


def _draw(data: dict[str, Series]):
  """A Matplotlib Figure with one panel per `PANELS` entry that has data; None if none has."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  panels = [(t, y, [n for n in names if n in data]) for t, y, names in PANELS]
  panels = [p for p in panels if p[2]]
  if not panels:
    return None
  fig = Figure(figsize=(4.5 * len(panels), 3.6), dpi=100, layout="constrained")
  FigureCanvasAgg(fig)
  for ax, (title, ylabel, names) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
    for name in names:
      steps, values = data[name]
      style = dict(marker="o", markersize=3) if name.startswith("test/") else {}
      ax.plot(steps, values, label=name, linewidth=1.2, **style)
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
  return fig


def write_curves(metrics_path: str | os.PathLike, out_png: str | os.PathLike) -> Path | None:
  """Draws `metrics_path`'s curves into the PNG `out_png`, atomically; returns its path.

  Returns None and writes nothing when the file is missing or has nothing to
  plot. The PNG is written to a temporary file beside `out_png` and moved over
  it with `os.replace`; the temporary file is removed if anything fails.
  """
  fig = _draw(series(read_rows(metrics_path)))
  if fig is None:
    return None
  out = Path(out_png)
  tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # open(), not mkstemp: the usual file mode
  try:
    with tmp.open("wb") as f:
      fig.savefig(f, format="png")
    os.replace(tmp, out)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return out
