"""PyTorch reference VAE for the vae_jax benchmarks (MNIST, CPU).

A deliberately plain PyTorch re-implementation of the vae_jax ``mnist_mlp``
(and a ``mnist_conv`` reference) configuration, used to compare quality and
CPU throughput against the JAX/Flax implementation with the same
architecture, loss, batch size, optimizer and data order.

Models (``--model``)
--------------------
``mlp`` (default, the ``mnist_mlp`` reference)
    encoder: 784 -> Linear(500) -> ReLU -> Linear(500, 2*20), split into
    (mean, logvar); decoder: 20 -> Linear(500) -> ReLU -> Linear(784)
    Bernoulli logits.
``conv`` (the ``mnist_conv`` reference; keep this exact model as reference
    even if the JAX side picks different equivalent-capacity layers)
    encoder: [1,28,28] -> Conv2d(1->32, k4, s2, p1) -> ReLU [32,14,14]
             -> Conv2d(32->64, k4, s2, p1) -> ReLU [64,7,7] -> flatten 3136
             -> Linear(3136, 2*20), split into (mean, logvar);
    decoder: 20 -> Linear(20, 3136) -> ReLU -> view [64,7,7]
             -> ConvTranspose2d(64->32, k4, s2, p1) -> ReLU [32,14,14]
             -> ConvTranspose2d(32->1, k4, s2, p1) [1,28,28] Bernoulli logits.

Initialisation: PyTorch module defaults (kaiming-uniform(a=sqrt(5)) weights,
uniform(+-1/sqrt(fan_in)) biases).  The JAX side uses Flax defaults
(lecun-normal weights, zero biases); this difference is intentional and
documented, not an attempt at bitwise parity.

Training step (beta = 1)
------------------------
* batch of ``batch_size`` uint8 images gathered from the in-memory array with
  the epoch permutation, converted to float32 in [0, 1] every step;
* dynamic binarisation ``x = (U < p)`` with fresh uniforms each step;
* ``z = mean + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``;
* ``recon = sum_pixels BCE_with_logits(logits, x)`` (= -log Bern(x | logits));
* ``KL = -1/2 * sum(1 + logvar - mean^2 - exp(logvar))``;
* ``loss = mean_batch(recon + KL)``; Adam(lr=1e-3, default betas/eps).

Data order: each epoch is a ``numpy.random.RandomState(seed)`` permutation
(one RandomState, advanced epoch after epoch); the remainder is dropped.

Evaluation: single-sample negative ELBO in nats per image over the full 10k
test set, with the test set binarised ONCE using
``numpy.random.RandomState(eval_seed)`` (default 1234, independent of the
training seed, so runs with different seeds share the same binarised test
set); eps for evaluation comes from ``torch.Generator().manual_seed(eval_seed)``.

CLI::

    python benchmarks/torch_vae.py --data_dir ../shared/data/mnist \
        --steps 2000 --batch_size 128 --seed 0 --threads 2 \
        --mode {quality,throughput} [--model {mlp,conv}]

Each mode prints exactly one JSON line on stdout.
Importable API: ``load_mnist``, ``build_model``, ``make_optimizer``,
``batch_iterator``, ``train_step``, ``evaluate``, ``throughput``,
``sample_throughput``, ``train``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from typing import Iterator

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

LATENT = 20
HIDDEN = 500
IMG = 28
NPIX = IMG * IMG


# --------------------------------------------------------------------------- data
def _read_idx_images(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic, n, rows, cols = np.frombuffer(buf[:16], dtype=">u4")
    if magic != 2051:
        raise ValueError(f"{path}: bad IDX image magic {magic}")
    return np.frombuffer(buf[16:], dtype=np.uint8).reshape(int(n), int(rows), int(cols))


def load_mnist(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (train uint8 [60000,28,28], test uint8 [10000,28,28])."""
    train = _read_idx_images(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    test = _read_idx_images(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    return train, test


def batch_iterator(images: np.ndarray, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Endless uint8 batches; new RandomState(seed) permutation each epoch, drop remainder."""
    rng = np.random.RandomState(seed)
    n = images.shape[0]
    nb = n // batch_size
    while True:
        perm = rng.permutation(n)
        for i in range(nb):
            yield images[perm[i * batch_size:(i + 1) * batch_size]]


def to_float(batch_u8: np.ndarray) -> torch.Tensor:
    """uint8 [B,28,28] -> float32 tensor in [0,1] (done every step, as in training)."""
    return torch.from_numpy(batch_u8).to(torch.float32).div_(255.0)


# -------------------------------------------------------------------------- models
class MLPVAE(nn.Module):
    def __init__(self, latent: int = LATENT, hidden: int = HIDDEN):
        super().__init__()
        self.latent = latent
        self.enc = nn.Sequential(nn.Linear(NPIX, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, NPIX))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x.reshape(x.shape[0], NPIX))
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z).reshape(z.shape[0], IMG, IMG)


class ConvVAE(nn.Module):
    def __init__(self, latent: int = LATENT):
        super().__init__()
        self.latent = latent
        self.enc = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 2 * latent))
        self.dec_fc = nn.Sequential(nn.Linear(latent, 64 * 7 * 7), nn.ReLU())
        self.dec_conv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x.reshape(x.shape[0], 1, IMG, IMG))
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dec_fc(z).reshape(z.shape[0], 64, 7, 7)
        return self.dec_conv(h).reshape(z.shape[0], IMG, IMG)


def build_model(model: str = "mlp", seed: int = 0, latent: int = LATENT) -> nn.Module:
    """Build the reference model with PyTorch default init (seeded by ``seed``)."""
    torch.manual_seed(seed)
    if model == "mlp":
        return MLPVAE(latent)
    if model == "conv":
        return ConvVAE(latent)
    raise ValueError(f"unknown model {model!r}")


def make_optimizer(model: nn.Module, lr: float = 1e-3) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr)


# ---------------------------------------------------------------------------- loss
def neg_elbo_terms(model: nn.Module, x: torch.Tensor, eps: torch.Tensor):
    """Per-example (recon, kl) for binary x [B,28,28] and eps [B,latent]."""
    mean, logvar = model.encode(x)
    z = mean + torch.exp(0.5 * logvar) * eps
    logits = model.decode(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2))
    kl = -0.5 * torch.sum(1.0 + logvar - mean.square() - logvar.exp(), dim=-1)
    return recon, kl


def train_step(model: nn.Module, opt: torch.optim.Optimizer, batch_u8: np.ndarray,
               gen: torch.Generator) -> torch.Tensor:
    """One Adam step on a uint8 batch (dynamic binarisation). Returns detached loss."""
    p = to_float(batch_u8)
    x = (torch.rand(p.shape, generator=gen) < p).to(torch.float32)
    eps = torch.randn(p.shape[0], model.latent, generator=gen)
    recon, kl = neg_elbo_terms(model, x, eps)
    loss = (recon + kl).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def binarize_fixed(images_u8: np.ndarray, eval_seed: int = 1234) -> np.ndarray:
    """Fixed (seeded, one-off) binarisation of a uint8 image array -> float32 {0,1}."""
    rng = np.random.RandomState(eval_seed)
    p = images_u8.astype(np.float32) / 255.0
    return (rng.uniform(size=p.shape) < p).astype(np.float32)


@torch.no_grad()
def evaluate(model: nn.Module, test_u8: np.ndarray, eval_seed: int = 1234,
             batch_size: int = 1000) -> dict:
    """Single-sample negative ELBO (nats/image) on the fixed-binarised test set."""
    model.eval()
    xb = torch.from_numpy(binarize_fixed(test_u8, eval_seed))
    gen = torch.Generator().manual_seed(eval_seed)
    tot_r = tot_k = 0.0
    n = xb.shape[0]
    for i in range(0, n, batch_size):
        x = xb[i:i + batch_size]
        eps = torch.randn(x.shape[0], model.latent, generator=gen)
        r, k = neg_elbo_terms(model, x, eps)
        tot_r += r.double().sum().item()
        tot_k += k.double().sum().item()
    model.train()
    return {"test_neg_elbo": (tot_r + tot_k) / n, "test_recon": tot_r / n, "test_kl": tot_k / n}


# ------------------------------------------------------------------------- drivers
def train(model: nn.Module, train_u8: np.ndarray, steps: int, batch_size: int = 128,
          seed: int = 0) -> tuple[float, float]:
    """Train ``steps`` steps; returns (train_seconds, last_loss)."""
    opt = make_optimizer(model)
    gen = torch.Generator().manual_seed(seed)
    it = batch_iterator(train_u8, batch_size, seed)
    t0 = time.perf_counter()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        loss = train_step(model, opt, next(it), gen)
    return time.perf_counter() - t0, float(loss)


@torch.no_grad()
def sample_throughput(model: nn.Module, batch: int = 1024, batches: int = 50,
                      warmup: int = 5, seed: int = 0) -> float:
    """Images/s for decoding prior samples z~N(0,I) to Bernoulli means (sigmoid)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(warmup):
        torch.sigmoid(model.decode(torch.randn(batch, model.latent, generator=gen)))
    t0 = time.perf_counter()
    for _ in range(batches):
        out = torch.sigmoid(model.decode(torch.randn(batch, model.latent, generator=gen)))
    dt = time.perf_counter() - t0
    model.train()
    assert out.shape == (batch, IMG, IMG)
    return batch * batches / dt


def throughput(model: nn.Module, train_u8: np.ndarray, steps: int = 500, batch_size: int = 128,
               seed: int = 0, warmup: int = 50, sample_batch: int = 1024,
               sample_batches: int = 50) -> dict:
    """Warm up ``warmup`` steps, then time ``steps`` training steps (data pipeline included)."""
    opt = make_optimizer(model)
    gen = torch.Generator().manual_seed(seed)
    it = batch_iterator(train_u8, batch_size, seed)
    for _ in range(warmup):
        train_step(model, opt, next(it), gen)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = train_step(model, opt, next(it), gen)
    loss = float(loss)  # CPU eager is synchronous; this is just for symmetry
    dt = time.perf_counter() - t0
    return {
        "train_images_per_s": steps * batch_size / dt,
        "train_seconds": dt,
        "step_ms": 1e3 * dt / steps,
        "sample_images_per_s": sample_throughput(model, sample_batch, sample_batches, seed=seed),
        "final_loss": loss,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data_dir", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist"))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch_size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval_seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", choices=["quality", "throughput"], default="quality")
    ap.add_argument("--model", choices=["mlp", "conv"], default="mlp")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--sample_batches", type=int, default=50)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    train_u8, test_u8 = load_mnist(args.data_dir)
    model = build_model(args.model, args.seed)
    common = {"impl": "torch", "model": args.model, "steps": args.steps,
              "batch_size": args.batch_size, "seed": args.seed,
              "torch_version": torch.__version__, "threads": torch.get_num_threads()}
    if args.mode == "quality":
        secs, last = train(model, train_u8, args.steps, args.batch_size, args.seed)
        res = evaluate(model, test_u8, args.eval_seed)
        out = {**common, **res, "train_seconds": secs, "final_train_loss": last}
    else:
        out = {**common, **throughput(model, train_u8, args.steps, args.batch_size, args.seed,
                                       warmup=args.warmup, sample_batches=args.sample_batches)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
