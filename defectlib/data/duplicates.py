"""Duplicates and near-duplicates between images, for ``defectlib data check``.

Identical pixels by an exact hash; near-duplicates by a 64-bit perceptual hash (DCT of a 32x32
thumbnail, Zauner 2010) within ``max_hamming`` bits, filtered by the mean absolute grey difference
(MAD) of 64x64 thumbnails, then confirmed by the MAD of the full images below ``mad_threshold``.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.fft import dctn

from .io import read_gray


@dataclass
class Pair:
    a: str
    b: str
    hamming: int
    mad: float
    kind: str  # "identical" or "near"

    @property
    def cross_split(self) -> bool:
        return self.a.split("/")[0] != self.b.split("/")[0]


def phash(arr: np.ndarray) -> np.uint64:
    """64-bit DCT perceptual hash of a grey image."""
    small = np.asarray(Image.fromarray(arr).resize((32, 32), Image.Resampling.BOX), dtype=np.float32)
    low = dctn(small, norm="ortho")[:8, :8].ravel()
    bits = (low[1:] > np.median(low[1:])).astype(np.uint64)
    return np.uint64((bits << np.arange(63, dtype=np.uint64)).sum())


def thumbnail(arr: np.ndarray, size: int = 64) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.BOX), dtype=np.float32)


def near_pairs(keys, hashes, shapes, paths, max_hamming, mad_threshold, exact, thumbs) -> list[Pair]:
    """Candidates by pHash Hamming distance, filtered by thumbnail MAD, confirmed by full-image MAD."""
    h = np.asarray(hashes, dtype=np.uint64)
    thumbs = np.stack(thumbs) if len(thumbs) else np.zeros((0, 64, 64), np.float32)
    n = len(h)
    cands = []
    for start in range(0, n, 512):
        block = h[start:start + 512]
        d = np.bitwise_count(block[:, None] ^ h[None, :])
        ii, jj = np.nonzero(d <= max_hamming)
        keep = jj > ii + start
        cands += [(int(i + start), int(j), int(d[i, j])) for i, j in zip(ii[keep], jj[keep])]
    exact_groups = defaultdict(list)
    for i, e in enumerate(exact):
        exact_groups[e].append(i)
    seen, pairs = set(), []
    for g in exact_groups.values():
        for a in range(len(g)):
            for b in range(a + 1, len(g)):
                i, j = g[a], g[b]
                seen.add((i, j))
                pairs.append(Pair(keys[i], keys[j], int(np.bitwise_count(h[i] ^ h[j])), 0.0, "identical"))
    cands = [c for c in cands if (c[0], c[1]) not in seen and shapes[c[0]] == shapes[c[1]]]
    if cands:
        ci, cj = np.array([c[0] for c in cands]), np.array([c[1] for c in cands])
        tmad = np.concatenate([np.abs(thumbs[ci[k:k + 4096]] - thumbs[cj[k:k + 4096]]).mean((1, 2))
                               for k in range(0, len(ci), 4096)])
        cands = [c for c, t in zip(cands, tmad) if t < mad_threshold]
    for i, j, d in cands:
        mad = float(np.abs(read_gray(paths[i]).astype(np.float32) - read_gray(paths[j])).mean())
        if mad < mad_threshold:
            pairs.append(Pair(keys[i], keys[j], d, mad, "near"))
    return pairs
