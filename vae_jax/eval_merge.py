"""Merges `python -m vae_jax.evaluate` records of adjacent example ranges into one.

A long evaluation (IS-NLL with k = 5000 over the whole test split) can run in
parts, `--examples 0:5000` and `--examples 5000:10000`, on one machine at
different times or on several at once. Each example draws what it would draw
in a single evaluation (its randomness comes from its index in the split), so
the merged figures are those of the single evaluation, up to float rounding.

With n_i examples and mean m_i per part (N = sum n_i):

    mean      = sum n_i m_i / N
    is_nll_stderr: from the pooled sums of squares,
              S_i = (n_i - 1) se_i^2 n_i + n_i m_i^2,
              var = (sum S_i - N mean^2) / (N - 1),   stderr = sqrt(var / N)

Only evaluators whose figures are means over examples merge: is_nll, elbo,
loss. Active units (a covariance over examples) and the sample-quality metrics
(against the whole split) do not; they are refused.

The parts must be of one set of parameters: the same `params_digest` (a hash
of the parameters themselves, so copies of a run in other folders or on other
machines merge, and a run retrained to the same step in the same folder does
not). Records written before the digest existed must share their workdir.
"""

from __future__ import annotations

import math
from typing import Sequence

from vae_jax.errors import UserError

MERGEABLE = ("is_nll", "elbo", "loss")
_SAME = ("step", "params", "metrics", "k")
_RECORD_KEYS = _SAME + ("workdir", "params_digest", "num_examples", "examples", "wall_s", "device",
                        "merged_from")


def example_range(record: dict) -> tuple[int, int]:
  """[start, stop) of the examples a record covers (a whole or --num_examples record starts at 0)."""
  start, stop = record.get("examples", (0, record["num_examples"]))
  return int(start), int(stop)


def _check(records: Sequence[dict], names: Sequence[str]) -> list[int]:
  """The order of `records` by start; UserError unless they are compatible and adjacent."""
  if len(records) < 2:
    raise UserError("--merge needs at least two evaluation records")
  same = _SAME + (("params_digest",) if all("params_digest" in r for r in records) else ("workdir",))
  for key in same:
    values = {repr(r.get(key)) for r in records}
    if len(values) > 1:
      raise UserError(f"--merge: the records differ in {key} ({', '.join(sorted(values))}); "
                      "merge only parts of one evaluation")
  other = sorted(set(records[0]["metrics"]) - set(MERGEABLE))
  if other:
    raise UserError(f"--merge: {', '.join(other)} cannot be merged from parts (only "
                    f"{', '.join(MERGEABLE)}: means over examples); evaluate them on the whole split")
  order = sorted(range(len(records)), key=lambda i: example_range(records[i]))
  for a, b in zip(order, order[1:]):
    if example_range(records[a])[1] != example_range(records[b])[0]:
      raise UserError(f"--merge: {names[a]} covers examples {list(example_range(records[a]))} and "
                      f"{names[b]} {list(example_range(records[b]))}: the parts must be adjacent, "
                      "without overlap")
  return order


def _is_nll(records: Sequence[dict], n: list[int]) -> dict:
  total = sum(n)
  mean = sum(ni * r["is_nll"] for ni, r in zip(n, records)) / total
  sq = sum((ni - 1) * r["is_nll_stderr"] ** 2 * ni + ni * r["is_nll"] ** 2 for ni, r in zip(n, records))
  var = max(sq - total * mean * mean, 0.0) / max(total - 1, 1)
  k = records[0]["is_nll_k"]
  seconds = sum(ni * k / r["is_nll_samples_per_s"] for ni, r in zip(n, records))
  return {"is_nll": mean, "is_nll_stderr": math.sqrt(var / total), "is_nll_k": k,
          "is_nll_bits_per_dim": sum(ni * r["is_nll_bits_per_dim"] for ni, r in zip(n, records)) / total,
          "is_nll_samples_per_s": total * k / seconds, "is_nll_num_examples": total}


def merge(records: Sequence[dict], names: Sequence[str]) -> dict:
  """One record for the union of the parts' examples (see the module doc)."""
  order = _check(records, names)
  records = [records[i] for i in order]
  n = [r["num_examples"] for r in records]
  out = {key: records[0][key] for key in _SAME}
  out["workdir"] = " + ".join(sorted({r["workdir"] for r in records}))
  if all("params_digest" in r for r in records):
    out["params_digest"] = records[0]["params_digest"]
  start, stop = example_range(records[0])[0], example_range(records[-1])[1]
  out.update(num_examples=sum(n), examples=[start, stop])
  if "is_nll" in out["metrics"]:
    out.update(_is_nll(records, n))
  means = [key for key, value in records[0].items()
           if key not in _RECORD_KEYS and not key.startswith("is_nll") and isinstance(value, (int, float))]
  for key in means:
    out[key] = sum(ni * r[key] for ni, r in zip(n, records)) / sum(n)
  devices = sorted({r["device"] for r in records})
  out.update(wall_s=sum(r["wall_s"] for r in records), device=" + ".join(devices),
             merged_from=[names[i] for i in order])
  return out
