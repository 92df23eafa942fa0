"""Datasets and input pipelines for the VAE trainer.

`load_datasets(config.data)` returns a `Datasets` with random-access train and
test sources of uint8 [H, W, C] images; `train_iterator` and `eval_batches`
turn a source into batches. See `loading.py` for the datasets and the
meaning of each config field. With `data.labels` on, sources also carry
integer class labels and batches a "label" field (see `source.py`).
"""

from __future__ import annotations

from vae_jax.data.loading import DATASET_NAMES, Datasets, load_datasets, validate
from vae_jax.data.pipeline import eval_batches, train_iterator

__all__ = [
    "DATASET_NAMES",
    "Datasets",
    "eval_batches",
    "load_datasets",
    "train_iterator",
    "validate",
]
