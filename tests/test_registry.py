"""Tests of vae_jax/registry.py: registration, lookup errors, and 'module:attribute' import paths."""

import math
import sys

import pytest

from vae_jax import registry
from vae_jax.errors import UserError
from vae_jax.registry import Registry


def _registry():
  r = Registry("widget")

  @r.register("beta")
  def beta():
    return "b"

  @r.register("alpha")
  def alpha():
    return "a"

  return r, alpha, beta


def test_register_returns_object_and_get_finds_it():
  """register leaves the decorated object unchanged; get returns it; names are sorted."""
  r, alpha, beta = _registry()
  assert r.get("alpha") is alpha and r.get("beta") is beta
  assert alpha() == "a"
  assert r.names() == ["alpha", "beta"]


def test_register_twice_raises():
  """A second registration under the same name is an error, and keeps the first entry."""
  r, alpha, _ = _registry()
  with pytest.raises(ValueError, match="widget 'alpha' is registered twice"):
    r.register("alpha")(lambda: None)
  assert r.get("alpha") is alpha


def test_get_unknown_lists_names():
  """An unknown name is a UserError naming the kind, the bad name, and every valid name."""
  r, _, _ = _registry()
  with pytest.raises(UserError) as e:
    r.get("gamma")
  msg = str(e.value)
  assert "widget" in msg and "'gamma'" in msg and "alpha, beta" in msg


def test_get_import_path():
  """'module:attribute' imports the attribute, for a name that is not registered."""
  r, _, _ = _registry()
  assert r.get("math:sqrt") is math.sqrt
  assert r.get("os.path:join") is sys.modules["os.path"].join


def test_registered_name_wins_over_import():
  """A registered name containing ':' is looked up, not imported."""
  r = Registry("widget")
  obj = r.register("math:sqrt")(lambda: 1)
  assert r.get("math:sqrt") is obj


@pytest.mark.parametrize("path, match", [("vae_jax_no_such_module_xyz:f", "cannot import module"),
                                         ("math:no_such_fn", "has no attribute 'no_such_fn'"),
                                         ("math:pi", "not callable"),
                                         (":sqrt", "not of the form"),
                                         ("math:", "not of the form")])
def test_bad_import_paths_are_user_errors(path, match):
  """Missing modules or attributes, non-callables and malformed paths are UserErrors."""
  r, _, _ = _registry()
  with pytest.raises(UserError, match=match):
    r.get(path)


def test_import_object_finds_modules_in_current_directory(tmp_path, monkeypatch):
  """Like `python -m`, a module in the current directory can be named without PYTHONPATH."""
  (tmp_path / "vae_jax_test_cwd_mod.py").write_text("def f():\n  return 42\n")
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
  monkeypatch.delitem(sys.modules, "vae_jax_test_cwd_mod", raising=False)
  assert registry.import_object("vae_jax_test_cwd_mod:f", what="thing")() == 42
