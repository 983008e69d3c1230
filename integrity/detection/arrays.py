"""Columnar helpers for the detection passes: group-bys by sorting, segment reductions, a hash
mix for MinHash, and connected components by label propagation — all numpy, no Python loop over
rows, memory linear in the events."""

from typing import Any

import numpy as np
import numpy.typing as npt

# Integer columns: int64 for times and cells, int32 where codes fit (half the memory at 10M).
Int = npt.NDArray[np.signedinteger[Any]]
UInt = npt.NDArray[np.uint64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


def mix(values: npt.NDArray[np.integer], seed: int = 0) -> UInt:
    """A 64-bit hash of each value (splitmix64's finaliser on value ^ seed): well spread, so
    the minimum over a set behaves like a random permutation's (MinHash)."""
    with np.errstate(over="ignore"):
        # in place: the copy and one shifted temporary, whatever the length
        h = values.astype(np.uint64)
        h ^= np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
        h += _GOLDEN
        h *= _MIX
        shifted = h >> np.uint64(31)
        h ^= shifted
        h *= _GOLDEN
        np.right_shift(h, np.uint64(29), out=shifted)
        h ^= shifted
    return h


def runs(sorted_keys: npt.NDArray[np.integer]) -> tuple[Int, Int]:
    """(starts, lengths) of the runs of equal values in a sorted array."""
    n = len(sorted_keys)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    starts = np.concatenate(([0], change)).astype(np.int64)
    lengths = np.diff(np.concatenate((starts, [n]))).astype(np.int64)
    return starts, lengths


def distinct_count(group: npt.NDArray[np.integer], value: npt.NDArray[np.integer]) -> Int:
    """For each row, how many distinct `value`s its `group` has (e.g. accounts per device)."""
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    # one int64 key per (group, value) pair: a 1-D unique, several times faster than axis=0
    span = int(value.max()) + 1
    pairs = np.unique(group.astype(np.int64) * span + value.astype(np.int64))
    starts, counts = runs(pairs // span)
    groups = pairs[starts] // span
    if groups[0] >= 0 and groups[-1] < 4 * len(group) + 1024:
        # dense codes (devices, networks, accounts): a table, not a search per row
        table = np.zeros(int(groups[-1]) + 1, dtype=np.int64)
        table[groups] = counts
        return table[group]
    return counts[np.searchsorted(groups, group)]


def components(n: int, left: Int, right: Int) -> Int:
    """Connected components of the graph on 0..n-1 with edges (left[i], right[i]): each node's
    label is the smallest node of its component (min-label propagation with pointer jumping)."""
    labels = np.arange(n, dtype=np.int64)
    if len(left) == 0:
        return labels
    while True:
        low = np.minimum(labels[left], labels[right])
        before = labels.copy()
        np.minimum.at(labels, left, low)
        np.minimum.at(labels, right, low)
        # pointer jumping: a label points at a node whose own label may be smaller
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(before, labels):
            return labels
