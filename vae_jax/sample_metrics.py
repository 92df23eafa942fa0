"""Sample-quality metrics on feature vectors: FID, KID, precision/recall, realism, class coverage.

Pure NumPy functions of real features `real_ND` and generated features
`fake_MD` (rows are images, columns the feature network's dimensions); which
network gives the features (the dataset's judge, InceptionV3) is the caller's
choice. All arithmetic is float64.

  FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the two sets,
      ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)).
  KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel k(a, b) = (a.b / D + 1)^3,
      averaged over random subsets (mean and standard deviation over subsets).
  Precision / recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls
      around its points with radius the distance to the k-th nearest neighbour in the same set;
      precision = share of generated points inside the real manifold, recall = share of real
      points inside the generated one (k = 3).
  Realism score (same paper): R(g) = max_r NND_k(r) / ||g - r|| over the real points whose
      radius is at most the median (the largest balls are dropped); R >= 1 means inside.
  Class histogram (for labelled data, a judge's predicted classes of unconditional samples):
      entropy in nats and coverage, the share of the C classes that get at least half their
      uniform share 1/C of the samples. Mode dropping lowers both.
"""

from __future__ import annotations

import numpy as np


def gaussian_stats(features_ND: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean [D], covariance [D, D]) with the unbiased 1/(N-1) covariance, as the FID references use."""
  f = np.asarray(features_ND, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f"need features [N >= 2, D], got shape {f.shape}")
  return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(a_DD: np.ndarray) -> np.ndarray:
  """The symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues -> 0)."""
  w, v = np.linalg.eigh((a_DD + a_DD.T) / 2)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
  """||mu_a - mu_b||^2 + tr(A + B - 2 (A B)^(1/2)) between N(mu_a, A) and N(mu_b, B).

  tr (A B)^(1/2) = tr (A^(1/2) B A^(1/2))^(1/2): the eigenvalues of A B equal those of the
  symmetric PSD A^(1/2) B A^(1/2), so two symmetric eigendecompositions give it without the
  complex round-off of a general matrix square root.
  """
  mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
  cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
  root_a = _psd_sqrt(cov_a)
  middle = root_a @ cov_b @ root_a
  eig = np.linalg.eigvalsh((middle + middle.T) / 2)
  tr_sqrt = np.sum(np.sqrt(np.clip(eig, 0, None)))
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)


def fid(real_ND: np.ndarray, fake_MD: np.ndarray) -> float:
  """FID between two feature sets (see `frechet_distance`)."""
  return frechet_distance(*gaussian_stats(real_ND), *gaussian_stats(fake_MD))


def _mmd2_unbiased(a_ND: np.ndarray, b_MD: np.ndarray) -> float:
  """Unbiased MMD^2 with k(x, y) = (x.y / D + 1)^3: diagonals left out of the within-set means."""
  d = a_ND.shape[1]
  k_aa = (a_ND @ a_ND.T / d + 1) ** 3
  k_bb = (b_MD @ b_MD.T / d + 1) ** 3
  k_ab = (a_ND @ b_MD.T / d + 1) ** 3
  n, m = len(a_ND), len(b_MD)
  within_a = (k_aa.sum() - np.trace(k_aa)) / (n * (n - 1))
  within_b = (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
  return float(within_a + within_b - 2 * k_ab.mean())


def kid(real_ND: np.ndarray, fake_MD: np.ndarray, *, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
  """(mean, std) of the unbiased MMD^2 over `num_subsets` random subsets of each set (without replacement
  within a subset), each of min(subset_size, N, M) points, as torch-fidelity and clean-fid report KID."""
  real, fake = np.asarray(real_ND, np.float64), np.asarray(fake_MD, np.float64)
  size = min(subset_size, len(real), len(fake))
  if size < 2:
    raise ValueError("KID needs at least 2 points in each set")
  rng = np.random.default_rng(seed)
  values = [_mmd2_unbiased(real[rng.choice(len(real), size, replace=False)],
                           fake[rng.choice(len(fake), size, replace=False)]) for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values))


def _sq_distances(a_ND: np.ndarray, b_MD: np.ndarray) -> np.ndarray:
  """||a_i - b_j||^2 [N, M], clipped at 0 against round-off."""
  sq = np.sum(a_ND**2, 1)[:, None] + np.sum(b_MD**2, 1)[None, :] - 2 * a_ND @ b_MD.T
  return np.maximum(sq, 0)


def knn_radii(features_ND: np.ndarray, k: int = 3, *, chunk: int = 1000) -> np.ndarray:
  """Each point's distance to its k-th nearest neighbour among the other points of the set, [N]."""
  f = np.asarray(features_ND, np.float64)
  if len(f) <= k:
    raise ValueError(f"need more than k={k} points, got {len(f)}")
  radii = np.empty(len(f))
  for start in range(0, len(f), chunk):
    sq = _sq_distances(f[start:start + chunk], f)
    # The point itself is at distance 0: the k-th neighbour is the (k+1)-th smallest.
    radii[start:start + chunk] = np.sqrt(np.partition(sq, k, axis=1)[:, k])
  return radii


def _inside_share(points_MD: np.ndarray, centres_ND: np.ndarray, radii_N: np.ndarray, chunk: int) -> float:
  """Share of points within radius_i of some centre i (the manifold test)."""
  inside = np.zeros(len(points_MD), bool)
  for start in range(0, len(points_MD), chunk):
    sq = _sq_distances(points_MD[start:start + chunk], centres_ND)
    inside[start:start + chunk] = np.any(sq <= radii_N[None, :] ** 2, axis=1)
  return float(inside.mean())


def precision_recall(real_ND: np.ndarray, fake_MD: np.ndarray, k: int = 3, *,
                     chunk: int = 1000) -> tuple[float, float]:
  """(precision, recall) of Kynkäänniemi et al. 2019 with k-NN manifolds."""
  real, fake = np.asarray(real_ND, np.float64), np.asarray(fake_MD, np.float64)
  precision = _inside_share(fake, real, knn_radii(real, k, chunk=chunk), chunk)
  recall = _inside_share(real, fake, knn_radii(fake, k, chunk=chunk), chunk)
  return precision, recall


def realism(real_ND: np.ndarray, fake_MD: np.ndarray, k: int = 3, *, chunk: int = 1000) -> np.ndarray:
  """The realism score of each generated point [M]: max over real r with radius <= the median radius of
  radius_r / ||g - r||. A score >= 1 means g lies in some kept real ball."""
  real, fake = np.asarray(real_ND, np.float64), np.asarray(fake_MD, np.float64)
  radii = knn_radii(real, k, chunk=chunk)
  keep = radii <= np.median(radii)
  real, radii = real[keep], radii[keep]
  scores = np.empty(len(fake))
  for start in range(0, len(fake), chunk):
    dist = np.sqrt(_sq_distances(fake[start:start + chunk], real))
    scores[start:start + chunk] = np.max(radii[None, :] / np.maximum(dist, 1e-12), axis=1)
  return scores


def class_histogram(predicted_M: np.ndarray, num_classes: int) -> dict[str, float]:
  """Entropy (nats; log C at uniform) and coverage (share of classes with >= 1/(2C) of the samples)."""
  counts = np.bincount(np.asarray(predicted_M, np.int64), minlength=num_classes)[:num_classes]
  p = counts / max(counts.sum(), 1)
  nonzero = p[p > 0]
  return {"class_entropy": float(-np.sum(nonzero * np.log(nonzero))),
          "class_coverage": float(np.mean(p >= 0.5 / num_classes))}
