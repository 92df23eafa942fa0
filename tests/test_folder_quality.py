"""--fid_dirs reads folders a batch at a time: features in path order, images of mixed sizes, bad files."""

import numpy as np
import pytest
from PIL import Image

from vae_jax.errors import UserError
from vae_jax.evaluators import folder_quality


class _MeanColour:
  """A stand-in feature network: per-image channel means and the height; records batch sizes."""

  def __init__(self):
    self.batches = []

  def outputs(self, images_NHWC):
    self.batches.append(len(images_NHWC))
    x = images_NHWC.astype(np.float64)
    feats = np.concatenate([x.mean(axis=(1, 2)), np.full((len(x), 1), x.shape[1])], axis=1)
    return feats, None


def _write(folder, rng, sizes):
  folder.mkdir()
  arrays = {}
  for i, (h, w) in enumerate(sizes):
    array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    name = f"{'sub/' if i % 3 == 0 else ''}img{i:03d}.png"
    (folder / name).parent.mkdir(exist_ok=True)
    Image.fromarray(array).save(folder / name)
    arrays[name] = array
  return arrays


def test_embed_folder_matches_each_image_in_path_order_a_batch_at_a_time(tmp_path):
  rng = np.random.default_rng(0)
  sizes = [(8, 8) if i % 2 else (12, 10) for i in range(23)]
  arrays = _write(tmp_path / "a", rng, sizes)
  network = _MeanColour()
  feats, logits = folder_quality.embed_folder(tmp_path / "a", network, 3, batch=5)
  expected = [np.r_[a.reshape(-1, 3).mean(axis=0), a.shape[0]] for _, a in sorted(arrays.items())]
  np.testing.assert_allclose(feats, np.stack(expected))
  assert logits is None and max(network.batches) == 5 and sum(network.batches) == 23


def test_embed_folder_grey_and_bad_files(tmp_path):
  rng = np.random.default_rng(1)
  arrays = _write(tmp_path / "a", rng, [(6, 6)] * 4)
  grey, _ = folder_quality.embed_folder(tmp_path / "a", _MeanColour(), 1)
  luma = [np.asarray(Image.fromarray(a).convert("L"), np.float64).mean() for _, a in sorted(arrays.items())]
  np.testing.assert_allclose(grey[:, 0], luma)
  (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
  with pytest.raises(UserError, match="broken.png"):
    folder_quality.embed_folder(tmp_path / "a", _MeanColour(), 3)
  (tmp_path / "one").mkdir()
  Image.fromarray(arrays["img001.png"]).save(tmp_path / "one" / "x.png")
  with pytest.raises(UserError, match="holds 1 images"):
    folder_quality.embed_folder(tmp_path / "one", _MeanColour(), 3)
