"""Name -> object registries that list the valid names when a lookup fails.

A name may also be an import path, ``package.module:attribute``, so users can
plug in their own losses or networks without editing the library (the module
must be importable: installed, or on ``PYTHONPATH`` / the current directory).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Callable, Generic, TypeVar

from vae_jax.errors import UserError

T = TypeVar("T")


def import_object(path: str, *, what: str) -> object:
  """Imports ``package.module:attribute``; a user mistake raises UserError."""
  module_name, _, attr = path.partition(":")
  if not module_name or not attr:
    raise UserError(f"{what} {path!r} is not of the form 'package.module:function'")
  cwd = str(Path.cwd())
  if cwd not in sys.path:  # like `python -m`, let users name modules in the current directory
    sys.path.insert(0, cwd)
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise UserError(
        f"cannot import module {module_name!r} for {what} {path!r} ({e}); "
        "make sure it is installed or on PYTHONPATH") from None
  try:
    return getattr(module, attr)
  except AttributeError:
    raise UserError(f"module {module_name!r} has no attribute {attr!r} (for {what} {path!r})") from None


class Registry(Generic[T]):
  """A named collection, e.g. of loss functions or networks."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def add(obj: T) -> T:
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      self._entries[name] = obj
      return obj
    return add

  def names(self) -> list[str]:
    return sorted(self._entries)

  def get(self, name: str) -> T:
    """Looks up a registered name, or imports ``module:attribute``."""
    if name in self._entries:
      return self._entries[name]
    if ":" in name:
      obj = import_object(name, what=self.kind)
      if not callable(obj):
        raise UserError(f"{self.kind} {name!r} is not callable")
      return obj  # type: ignore[return-value]
    raise UserError(
        f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())} "
        "(or 'package.module:function' for your own)")
