"""Scoring a FLAGGED.csv against the generator's ground truth.

An account is a positive when the ground truth gives it an attack family (a hijacked account
too: flagging it is right), a negative when it is `genuine`. Flagged ids the ground truth does
not know count as false positives (and are reported apart as `unknown_flagged`).

- precision = true positives / flagged; recall = true positives / attack accounts;
- per family (and per group-size band): recall = that family's accounts flagged / its accounts;
  precision = its true positives / (its true positives + every false positive): a genuine
  account flagged is charged to each family, as if it were the only one attacking, so a
  family's precision is never better than the overall one; F1 from those two;
- macro recall = the mean of the families' recalls;
- genuine accounts flagged per million = false positives / genuine accounts x 1e6 (on the clean
  replay every account is genuine).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.integrity.generate import BANDS, FAMILIES, GENUINE, TRUTH_HEADER

FLAGGED_HEADER = ["user_id", "score", "signals"]


@dataclass(frozen=True)
class AccountTruth:
    family: str
    group: str = ""
    group_size: int = 0


def band_of(size: int) -> str:
    for low, high in BANDS:
        if low <= size <= high:
            return f"{low}-{high}"
    return "other"


def truth_read(path: Path) -> dict[str, AccountTruth]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        if next(reader, None) != TRUTH_HEADER:
            raise ValueError(f"{path}: not a ground-truth file (header {TRUTH_HEADER})")
        return {
            row[0]: AccountTruth(row[1], row[2], int(row[3]) if row[3] else 0) for row in reader
        }


def flagged_read(path: Path) -> set[str]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != FLAGGED_HEADER:
            raise ValueError(f"{path}: header {header}, expected {FLAGGED_HEADER}")
        return {row[0] for row in reader}


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None or precision + recall == 0:
        return None
    return 2 * precision * recall / (precision + recall)


def score(truth: dict[str, AccountTruth], flagged: set[str]) -> dict[str, Any]:
    attackers = {user for user, t in truth.items() if t.family != GENUINE}
    genuine = len(truth) - len(attackers)
    true_positives = flagged & attackers
    false_positives = flagged - attackers
    unknown = {user for user in false_positives if user not in truth}

    def row(members: set[str]) -> dict[str, Any]:
        found = len(members & flagged)
        precision = _ratio(found, found + len(false_positives))
        recall = _ratio(found, len(members))
        return {
            "accounts": len(members),
            "flagged": found,
            "precision": precision,
            "recall": recall,
            "f1": _f1(precision, recall),
        }

    by_family: dict[str, set[str]] = defaultdict(set)
    by_band: dict[str, set[str]] = defaultdict(set)
    for user in attackers:
        t = truth[user]
        by_family[t.family].add(user)
        by_band[band_of(t.group_size)].add(user)
    families = {family: row(by_family[family]) for family in FAMILIES if by_family[family]}
    family_recalls = [f["recall"] for f in families.values()]
    precision = _ratio(len(true_positives), len(flagged))
    recall = _ratio(len(true_positives), len(attackers))
    return {
        "accounts": len(truth),
        "attack_accounts": len(attackers),
        "genuine_accounts": genuine,
        "flagged": len(flagged),
        "true_positives": len(true_positives),
        "false_positives": len(false_positives),
        "unknown_flagged": len(unknown),
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "macro_recall": sum(family_recalls) / len(family_recalls) if family_recalls else None,
        "genuine_flagged_per_million": (len(false_positives) / genuine * 1e6 if genuine else None),
        "families": families,
        "bands": {
            f"{low}-{high}": row(by_band[f"{low}-{high}"])
            for low, high in BANDS
            if by_band[f"{low}-{high}"]
        },
    }
