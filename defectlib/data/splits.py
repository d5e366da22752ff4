"""Reproducible, leakage-free splits.

NEU-DET has no official split (docs/papers.md#danet). The "1440/360" convention is a per-class
240/60 split: :func:`neu_det_split` makes it seeded and stratified by file-name class, and keeps
byte-identical images (``patches_101`` / ``patches_105``) on the same side. The AMFF-YOLOX 1620/180
lists are read from ``splits/`` when present. NEU-Seg ships its own split; its samples are keyed
``<split>/<name>`` because 300 file names occur in both splits as different images. MTD has no
split at all: every MTD split of the notebooks (train / val / test of notebook 02, the defective
train / test of notebook 03, the few-shot target of notebook 04) is one :func:`grouped_split`, which
keeps its near-duplicate pairs (:data:`MTD_NEAR_DUPLICATES`) on one side.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Hashable, Mapping, Sequence

import numpy as np

from .errors import MissingFileError, SplitError
from .neu_det import NEUDET, filename_class


def identical_groups(paths: Sequence[Path]) -> list[list[int]]:
    """Indices of byte-identical files, grouped (singletons included), by SHA-256 of the bytes."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(paths):
        by_hash[hashlib.sha256(Path(p).read_bytes()).hexdigest()].append(i)
    return list(by_hash.values())


def stratified_split(labels: Sequence[Hashable], test_fraction: float = 0.2, seed: int = 0,
                     groups: Sequence[Sequence[int]] | None = None) -> tuple[list[int], list[int]]:
    """Seeded split of indices, ``round(test_fraction * n_c)`` test samples per label ``c``.

    ``groups`` (lists of indices that must stay together, e.g. identical images) are placed as one
    unit, under the label of their first member. Returns sorted (train, test) index lists.
    """
    n = len(labels)
    groups = [list(g) for g in groups] if groups is not None else []
    grouped = {i for g in groups for i in g}
    units = groups + [[i] for i in range(n) if i not in grouped]
    by_label: dict[Hashable, list[list[int]]] = defaultdict(list)
    for u in units:
        by_label[labels[u[0]]].append(u)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for lab in sorted(by_label, key=str):
        us = sorted(by_label[lab])
        order = rng.permutation(len(us))
        target = int(round(test_fraction * sum(len(u) for u in us)))
        taken = 0
        for k in order:
            u = us[k]
            if taken + len(u) <= target:
                test += u
                taken += len(u)
            else:
                train += u
        if taken != target:
            raise SplitError(None, f"cannot place exactly {target} samples of {lab!r} in test with groups kept together")
    return sorted(train), sorted(test)


def neu_det_split(root, scheme: str = "stratified", seed: int = 0, test_fraction: float = 0.2
                  ) -> tuple[list[str], list[str]]:
    """(train ids, test ids) of NEU-DET.

    ``scheme="stratified"``: seeded, ``test_fraction`` per file-name class (0.2 -> 240/60 per class,
    1440/360 in all), identical images on the same side. ``scheme="amff_yolox"``: the 1620/180 lists
    in ``<root>/splits/amff_yolox_{train,test}.txt`` (SplitError when absent).
    """
    root = Path(root)
    if scheme == "amff_yolox":
        lists = []
        for part in ("train", "test"):
            f = root / "splits" / f"amff_yolox_{part}.txt"
            if not f.is_file():
                raise SplitError(f, "split list not found (it ships with the real NEU-DET copy only)")
            lists.append([ln.strip() for ln in f.read_text().split() if ln.strip()])
        overlap = set(lists[0]) & set(lists[1])
        if overlap:
            raise SplitError(root / "splits", f"train and test lists share {len(overlap)} ids")
        return lists[0], lists[1]
    if scheme != "stratified":
        raise ValueError(f"unknown NEU-DET split scheme {scheme!r}; use 'stratified' or 'amff_yolox'")
    ds = NEUDET(root)
    groups = [g for g in identical_groups([img for img, _ in ds.files]) if len(g) > 1]
    labels = [filename_class(i) for i in ds.ids]
    tr, te = stratified_split(labels, test_fraction, seed, groups)
    return [ds.ids[i] for i in tr], [ds.ids[i] for i in te]


def neu_seg_ids(root, split: str) -> list[str]:
    """``["training/000201", ...]``: NEU-Seg sample keys of one split (split/name, never name alone)."""
    folder = Path(root) / "images" / split
    if not folder.is_dir():
        raise MissingFileError(folder, "NEU-Seg split folder not found")
    return sorted(f"{split}/{p.stem}" for p in folder.glob("*.jpg"))


#: Pairs ``defectlib data check`` finds in the real NEU-Seg (MAD < 2.9 grey levels) that are NOT in
#: its near_duplicates.txt (16 pairs, 6 across train/test). They share the background surface; in
#: several one image carries an extra defect (often a bright line), so their masks differ.
NEU_SEG_CHECK_EXTRA = [
    ("training/003874", "test/000054", 2.21), ("training/000910", "test/000700", 2.46),
    ("training/000944", "test/000734", 2.55), ("training/003886", "test/000076", 2.64),
    ("training/003883", "test/000066", 2.84), ("training/000966", "test/000746", 2.90),
    ("training/001780", "training/004000", 2.46), ("training/002650", "training/004080", 2.46),
    ("test/000573", "test/000685", 2.48), ("training/001814", "training/004034", 2.54),
    ("training/002684", "training/004114", 2.55), ("training/001743", "training/003985", 2.77),
    ("training/003483", "training/004145", 2.77), ("training/002613", "training/004065", 2.86),
    ("training/001836", "training/004046", 2.89), ("training/002706", "training/004126", 2.90),
]

#: Near-duplicate pairs ``defectlib data check`` finds in the real MTD (same crack / blowhole shot
#: twice). MTD has no official split: keep each pair on one side (:func:`groups_from_pairs`).
MTD_NEAR_DUPLICATES = [
    ("MT_Crack/exp2_num_85846", "MT_Crack/exp2_num_86854", 1.64),
    ("MT_Crack/exp3_num_85897", "MT_Crack/exp3_num_86892", 1.79),
    ("MT_Crack/exp5_num_85642", "MT_Crack/exp5_num_86031", 2.06),
    ("MT_Crack/exp4_num_85602", "MT_Crack/exp4_num_85998", 2.15),
    ("MT_Crack/exp6_num_85665", "MT_Crack/exp6_num_86064", 2.24),
    ("MT_Blowhole/exp2_num_108741", "MT_Blowhole/exp2_num_108923", 2.49),
    ("MT_Blowhole/exp1_num_108719", "MT_Blowhole/exp1_num_108889", 2.80),
]


def groups_from_pairs(ids: Sequence[str], pairs) -> list[list[int]]:
    """Index groups (size > 1) of ``ids`` linked by ``pairs`` (a, b, ...), merged transitively --
    pass them as ``groups`` to :func:`grouped_split` to keep near-duplicates on one side."""
    index = {k: i for i, k in enumerate(ids)}
    parent = list(range(len(ids)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for a, b, *_ in pairs:
        if a in index and b in index:
            parent[find(index[a])] = find(index[b])
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(ids)):
        groups[find(i)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def grouped_units(labels: Sequence[Hashable], groups: Sequence[Sequence[int]] = ()) -> dict[Hashable, list[list[int]]]:
    """The units a grouped split moves, by label: each of ``groups`` (near-duplicates) is one unit
    under the label of its first member, every other index a unit of its own; units in the order
    of their first index, labels in order of first appearance."""
    _check_groups(len(labels), groups)
    grouped = {i for g in groups for i in g}
    units = sorted([list(g) for g in groups] + [[i] for i in range(len(labels)) if i not in grouped],
                   key=lambda u: u[0])
    by_label: dict[Hashable, list[list[int]]] = {}
    for u in units:
        by_label.setdefault(labels[u[0]], []).append(u)
    return by_label


def _check_groups(n: int, groups: Sequence[Sequence[int]]) -> None:
    seen: set[int] = set()
    for g in groups:
        if not g or list(g) != sorted(set(g)) or seen & set(g) or not 0 <= g[0] <= g[-1] < n:
            raise SplitError(None, f"groups must be non-empty, sorted, disjoint lists of indices in "
                                   f"0..{n - 1}; {list(g)} is not")
        seen.update(g)


def grouped_split(labels: Sequence[Hashable], fractions: Sequence[float] | None = None, *,
                  counts: Sequence[Mapping[Hashable, int]] | None = None, seed: int = 0,
                  groups: Sequence[Sequence[int]] = ()) -> list[list[int]]:
    """Seeded split of indices ``0..len(labels)-1`` into ``[rest, part 1, ..., part k]``, each of
    ``groups`` (near-duplicates, e.g. :func:`groups_from_pairs` of :data:`MTD_NEAR_DUPLICATES`)
    whole in one part, so no image of a part has its twin in another. Parts are sized one of two
    ways (give exactly one):

    ``fractions=(f_1, ..., f_k)``: stratified by label, exact counts (``round(f * n)`` of each
    label, :func:`stratified_split`). Part k is drawn first from every index (``seed``), part k-1
    from what is left with ``f_{k-1} / (1 - f_k)`` (``seed + 1``), and so on; the rest is what no
    part took (the training set). Index lists sorted. MTD's train / val / test of notebook 02 are
    ``fractions=(val, test)``, its defective train / test of notebook 03 ``fractions=(test,)``.

    ``counts=[{label: n, ...}, ...]``: a few images per label (paper 004's scarce target). The
    units of each label are shuffled once (one generator, labels in the order of ``counts[0]``);
    each part takes, label after label, whole units from the front until it holds at least ``n``
    images of that label; the rest keeps the shuffled order. Index lists in that drawing order.
    """
    if (fractions is None) == (counts is None):
        raise ValueError("grouped_split: give either fractions or counts (exactly one)")
    if fractions is not None:
        return _split_fractions(labels, list(fractions), seed, groups)
    return _split_counts(labels, list(counts), seed, groups)


def _split_fractions(labels, fractions: list[float], seed: int, groups) -> list[list[int]]:
    if any(f < 0 for f in fractions) or sum(fractions) >= 1:
        raise ValueError(f"fractions={fractions}: each must be >= 0 and together below 1 (the rest)")
    _check_groups(len(labels), groups)
    left, parts, remaining = list(range(len(labels))), [], 1.0
    for step, f in enumerate(reversed(fractions)):
        where = {i: k for k, i in enumerate(left)}
        left_groups = [[where[i] for i in g] for g in groups if g[0] in where]
        keep, take = stratified_split([labels[i] for i in left], f / remaining, seed + step, left_groups)
        parts.insert(0, [left[k] for k in take])
        left = [left[k] for k in keep]
        remaining -= f
    return [left] + parts


def _split_counts(labels, counts: list[Mapping[Hashable, int]], seed: int, groups) -> list[list[int]]:
    by_label = grouped_units(labels, groups)
    order = list(counts[0]) if counts else list(by_label)
    for part in counts:
        if list(part) != order or any(n < 0 for n in part.values()):
            raise ValueError(f"counts: every part needs a count >= 0 for each of {order}, got {dict(part)}")
    missing = set(by_label) - set(order)
    if missing:
        raise ValueError(f"counts: no count given for label(s) {sorted(missing, key=str)}")
    rng = np.random.default_rng(seed)
    pools = {lab: [by_label.get(lab, [])[k] for k in rng.permutation(len(by_label.get(lab, [])))] for lab in order}
    parts = []
    for part in counts:
        taken: list[int] = []
        for lab in order:
            n, pool = len(taken), pools[lab]
            while pool and len(taken) - n < part[lab]:
                taken += pool.pop(0)
        parts.append(taken)
    return [[i for lab in order for u in pools[lab] for i in u]] + parts


def neu_seg_near_duplicates(root, include_check: bool = True) -> list[tuple[str, str, float]]:
    """Pairs listed in ``near_duplicates.txt`` as (key a, key b, mean abs grey difference), plus
    (``include_check``) the further pairs ``data check`` finds (:data:`NEU_SEG_CHECK_EXTRA`)."""
    f = Path(root) / "near_duplicates.txt"
    if not f.is_file():
        return []
    out = list(NEU_SEG_CHECK_EXTRA) if include_check else []
    for line in f.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            mad, a, b = line.split()[:3]
            out.append((a.rsplit(".", 1)[0], b.rsplit(".", 1)[0], float(mad)))
    return out


def neu_seg_clean_test_ids(root, include_check: bool = True) -> list[str]:
    """NEU-Seg test keys without the test images that near-duplicate a training image: 818 of 840
    on the real set (22 pairs; 16 with ``include_check=False``, i.e. near_duplicates.txt only)."""
    leaked = set()
    for a, b, _ in neu_seg_near_duplicates(root, include_check):
        if a.split("/")[0] != b.split("/")[0]:
            leaked.add(a if a.startswith("test/") else b)
    return [k for k in neu_seg_ids(root, "test") if k not in leaked]
