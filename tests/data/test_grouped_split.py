"""The one grouped splitter every MTD split goes through (``defectlib.data.splits.grouped_split``):
near-duplicate groups whole in one part, seeded, and each of its three uses reproduced exactly as
the code it replaced split (hard-coded cases computed with that code, and a re-implementation of
it compared on random inputs)."""
from __future__ import annotations

import numpy as np
import pytest

from defectlib.data import SplitError
from defectlib.data.splits import grouped_split, grouped_units, stratified_split

LABELS = ["a", "b", "c", "a", "b", "a", "c", "a", "b", "a", "c", "a", "b", "a", "a", "b", "c", "a", "b", "a"]
GROUPS = [[0, 3], [4, 8, 12], [6, 10]]
FLAGS = [True, False, True, True, False, True, True, False, True, True, False, True, True, False, True, True,
         False, True, True, True]
FLAG_GROUPS = [[0, 3], [2, 9, 11], [4, 7]]


def _random_case(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    labels = rng.choice(["x", "y", "z"], n).tolist()
    perm = rng.permutation(n).tolist()
    groups, k = [], 0
    for size in (2, 2, 3, 2):           # groups within one label, as near-duplicates are
        members = [i for i in perm[k:] if labels[i] == labels[perm[k]]][:size]
        k += 1
        if len(members) == size and not any(set(members) & set(g) for g in groups):
            groups.append(sorted(members))
    return labels, groups


def _old_split3(strata, val_fraction, test_fraction, seed, groups=()):
    """Notebook 02's train / val / test before grouped_split (severstal/data.py ``_split3``)."""
    rest, test = stratified_split(list(strata), test_fraction, seed, groups=groups)
    where = {i: k for k, i in enumerate(rest)}
    rest_groups = [[where[i] for i in g] for g in groups if g[0] in where]
    tr, va = stratified_split([strata[i] for i in rest], val_fraction / (1 - test_fraction), seed + 1,
                              groups=rest_groups)
    return [rest[i] for i in tr], [rest[i] for i in va], sorted(test)


def _old_target(flags, groups, seed, counts):
    """Notebook 04's few-shot draw before grouped_split (synthetic/data.py ``load_target``)."""
    rng = np.random.default_rng(seed)
    partner = {i: g for g in groups for i in g}

    def shuffled_units(indices):
        units, seen = [], set()
        for i in indices:
            if i not in seen:
                units.append(list(partner.get(i, [i])))
                seen.update(units[-1])
        return [units[k] for k in rng.permutation(len(units))]

    def take(units, n):
        out = []
        while units and len(out) < n:
            out += units.pop(0)
        return out
    d = shuffled_units([i for i, f in enumerate(flags) if f])
    c = shuffled_units([i for i, f in enumerate(flags) if not f])
    parts = [take(d, n_d) + take(c, n_c) for n_d, n_c in counts]
    return [[i for u in d for i in u] + [i for u in c for i in u]] + parts


def test_hard_coded_cases_of_the_replaced_code():
    # computed with the code before grouped_split (commit dddf835)
    assert grouped_split(LABELS, (0.2, 0.2), seed=5, groups=GROUPS) == [
        [0, 3, 4, 6, 7, 8, 10, 12, 14, 15, 17, 19], [2, 9, 13, 18], [1, 5, 11, 16]]
    assert grouped_split(LABELS, (0.25,), seed=3, groups=GROUPS) == [
        [0, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 18, 19], [1, 7, 15, 16, 17]]
    assert grouped_split(FLAGS, counts=[{True: 2, False: 1}, {True: 4, False: 2}], seed=4, groups=FLAG_GROUPS) == [
        [19, 18, 15, 14, 8, 6, 12, 1, 4, 7], [2, 9, 11, 10], [0, 3, 17, 5, 16, 13]]


@pytest.mark.parametrize("seed", range(6))
def test_reproduces_each_replaced_split_on_random_cases(seed):
    labels, groups = _random_case(seed)
    for vf, tf in ((0.15, 0.15), (0.2, 0.1), (0.3, 0.25)):
        try:
            old = list(_old_split3(labels, vf, tf, seed, groups))
        except SplitError:
            continue
        assert grouped_split(labels, (vf, tf), seed=seed, groups=groups) == old
    assert grouped_split(labels, (0.25,), seed=seed, groups=groups) == list(stratified_split(labels, 0.25, seed, groups))
    flags = [lab != "z" for lab in labels]
    for counts in (((3, 1), (9, 4)), ((1, 1), (0, 0)), ((5, 0), (30, 2))):
        got = grouped_split(flags, counts=[{True: d, False: c} for d, c in counts], seed=seed, groups=groups)
        assert got == _old_target(flags, groups, seed, counts)


@pytest.mark.parametrize("seed", range(4))
def test_groups_stay_whole_and_parts_cover_every_index(seed):
    labels, groups = _random_case(seed + 10)
    flags = [lab == "x" for lab in labels]
    for parts in (grouped_split(labels, (0.2, 0.2), seed=seed, groups=groups),
                  grouped_split(flags, counts=[{True: 3, False: 2}, {True: 5, False: 5}], seed=seed, groups=groups)):
        assert sorted(i for p in parts for i in p) == list(range(len(labels)))
        for g in groups:
            assert sum(bool(set(g) & set(p)) for p in parts) == 1, (g, parts)


def test_deterministic_per_seed():
    labels, groups = _random_case(3)
    for kw in ({"fractions": (0.2, 0.2)}, {"counts": [{"x": 2, "y": 2, "z": 2}]}):
        a = grouped_split(labels, seed=7, groups=groups, **kw)
        assert grouped_split(labels, seed=7, groups=groups, **kw) == a
        assert grouped_split(labels, seed=8, groups=groups, **kw) != a


def test_counts_take_whole_units_until_at_least_n():
    labels = ["d"] * 6
    rest, first = grouped_split(labels, counts=[{"d": 2}], seed=0, groups=[[0, 1, 2], [3, 4, 5]])
    assert len(first) == 3 and rest and sorted(first + rest) == list(range(6))


def test_grouped_units_one_unit_per_group_under_its_first_member():
    units = grouped_units(["a", "b", "a", "b"], [[1, 2]])
    assert units == {"a": [[0]], "b": [[1, 2], [3]]}


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="exactly one"):
        grouped_split(LABELS)
    with pytest.raises(ValueError, match="exactly one"):
        grouped_split(LABELS, (0.2,), counts=[{"a": 1}])
    with pytest.raises(ValueError, match="below 1"):
        grouped_split(LABELS, (0.6, 0.4))
    with pytest.raises(SplitError, match="disjoint"):
        grouped_split(LABELS, (0.2,), groups=[[0, 3], [3, 5]])
    with pytest.raises(SplitError, match="0..19"):
        grouped_split(LABELS, (0.2,), groups=[[0, 30]])
    with pytest.raises(ValueError, match="no count given"):
        grouped_split(LABELS, counts=[{"a": 1, "b": 1}])
    with pytest.raises(ValueError, match=">= 0"):
        grouped_split(LABELS, counts=[{"a": 1, "b": 1, "c": -1}])
