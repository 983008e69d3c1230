"""The integrity benchmark's generator and scoring (bench/integrity): deterministic streams, a
clean replay whose genuine background is byte-identical, every attack family planted with its
ground truth, and exact scores on a hand-made example."""

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench.integrity.generate import (
    BANDS,
    FAMILIES,
    GENUINE,
    HEADER,
    START_US,
    World,
    world_generate,
    world_write,
)
from bench.integrity.score import AccountTruth, band_of, score, truth_read

LIKES = 60_000


@pytest.fixture(scope="module")
def attacked() -> World:
    return world_generate(seed=7, likes=LIKES)


@pytest.fixture(scope="module")
def clean() -> World:
    return world_generate(seed=7, likes=LIKES, clean=True)


def _written(world: World, directory: Path, name: str) -> tuple[bytes, Path]:
    events, truth = directory / f"{name}.csv", directory / f"{name}-truth.csv"
    world_write(world, events, truth)
    return events.read_bytes(), truth


def test_the_same_seed_gives_the_same_files_and_another_seed_does_not(
    attacked: World, tmp_path: Path
) -> None:
    first, first_truth = _written(attacked, tmp_path, "a")
    again, again_truth = _written(world_generate(seed=7, likes=LIKES), tmp_path, "b")
    other, _ = _written(world_generate(seed=8, likes=LIKES), tmp_path, "c")

    assert first == again
    assert first_truth.read_bytes() == again_truth.read_bytes()
    assert first != other


def test_the_clean_replay_is_the_attacked_stream_without_its_attack_lines(
    attacked: World, clean: World, tmp_path: Path
) -> None:
    attacked_bytes, _ = _written(attacked, tmp_path, "attacked")
    clean_bytes, clean_truth = _written(clean, tmp_path, "clean")
    attacked_lines = attacked_bytes.split(b"\n")[1:-1]
    clean_lines = clean_bytes.split(b"\n")[1:-1]

    # the genuine lines, in order, are the clean file's lines byte for byte
    genuine_lines = [
        line
        for line, is_attack in zip(attacked_lines, attacked.events.attack, strict=True)
        if not is_attack
    ]
    assert genuine_lines == clean_lines
    assert len(attacked_lines) - len(clean_lines) == int(attacked.events.attack.sum()) > 0
    assert clean_bytes.startswith(HEADER)
    # and on the clean replay every account is genuine (a hijacked one too)
    assert {t.family for t in truth_read(clean_truth).values()} == {GENUINE}


def test_the_csv_follows_the_spec_format_in_time_order(attacked: World, tmp_path: Path) -> None:
    events, _ = _written(attacked, tmp_path, "attacked")
    rows = list(csv.reader(events.decode().splitlines()))
    assert rows[0] == ["user_id", "video_id", "creator_id", "ts", "device_id", "ip"]
    assert all(len(row) == 6 and row[0] and row[1] and row[2] for row in rows[1:])
    stamps = [row[3] for row in rows[1:]]
    assert stamps == sorted(stamps)
    assert stamps[0].endswith("Z") and len(stamps[0]) == len("2026-10-01T00:00:00.000000Z")
    assert attacked.events.ts.min() >= START_US
    # a video always has the same creator
    creators: dict[str, set[str]] = {}
    for row in rows[1:]:
        creators.setdefault(row[1], set()).add(row[2])
    assert max(len(c) for c in creators.values()) == 1
    # one like per (user, video)
    assert len({(row[0], row[1]) for row in rows[1:]}) == len(rows) - 1


def test_every_family_is_planted_in_every_size_band_with_its_ground_truth(
    attacked: World, tmp_path: Path
) -> None:
    _, truth_path = _written(attacked, tmp_path, "attacked")
    truth = truth_read(truth_path)
    index_of = {user_id.decode(): i for i, user_id in enumerate(attacked.user_ids)}
    attack_likes = Counter(attacked.events.user[attacked.events.attack].tolist())
    all_likes = Counter(attacked.events.user.tolist())

    for family in FAMILIES:
        members = {u: t for u, t in truth.items() if t.family == family}
        sizes = {t.group: t.group_size for t in members.values()}
        assert {band_of(size) for size in sizes.values()} == {f"{lo}-{hi}" for lo, hi in BANDS}, (
            family
        )
        assert all(10 <= size <= 300 for size in sizes.values())
        # every account of the family made attack likes
        assert all(attack_likes[index_of[u]] > 0 for u in members), family
    # hijacked accounts keep their owners' own likes and carry the span they were taken over
    hijacked = [i for i, t in attacked.truth.items() if t.family == "hijacked"]
    assert all(all_likes[i] > attack_likes[i] for i in hijacked)
    for i in hijacked:
        t = attacked.truth[i]
        assert t.span_start_us is not None and t.span_end_us is not None
        mine = (attacked.events.user == i) & attacked.events.attack
        assert (attacked.events.ts[mine] - START_US >= t.span_start_us).all()
        assert (attacked.events.ts[mine] - START_US <= t.span_end_us).all()
    # the others are fresh accounts: nothing but attack (and camouflage) likes
    fresh = [i for i, t in attacked.truth.items() if t.family != "hijacked"]
    assert all(all_likes[i] == attack_likes[i] for i in fresh)
    # the counts say the same
    assert attacked.counts["attack_accounts"] == len(attacked.truth)
    assert sum(f["accounts"] for f in attacked.counts["families"].values()) == len(attacked.truth)


def test_the_genuine_background_has_shared_addresses_and_devices_and_multi_device_users(
    clean: World,
) -> None:
    ev = clean.events
    users_per_ip = np.bincount(np.unique(ev.ip.astype(np.int64) << 32 | ev.user)[...] >> 32)
    assert users_per_ip.max() >= 50  # carrier NAT / office / VPN exits
    pairs = np.unique(ev.device.astype(np.int64) << 32 | ev.user)
    users_per_device = np.bincount((pairs >> 32)[(pairs >> 32) > 0])
    assert users_per_device.max() >= 2  # a household's shared tablet
    devices_per_user = np.bincount(pairs[(pairs >> 32) > 0] & 0xFFFFFFFF)
    assert (devices_per_user >= 2).sum() > len(np.unique(ev.user)) // 10
    likes_per_user = np.bincount(ev.user)
    assert likes_per_user.max() > 20 * np.median(likes_per_user[likes_per_user > 0])  # heavy tail
    assert (ev.device == 0).any()  # some likes without a device id


def test_scores_on_a_hand_made_example_are_exact() -> None:
    # given 4 genuine accounts and 4 attackers in three families and bands
    truth = {
        "g1": AccountTruth(GENUINE),
        "g2": AccountTruth(GENUINE),
        "g3": AccountTruth(GENUINE),
        "g4": AccountTruth(GENUINE),
        "a1": AccountTruth("lockstep", "lockstep-0", 10),
        "a2": AccountTruth("lockstep", "lockstep-0", 10),
        "b1": AccountTruth("one_shot", "one_shot-0", 50),
        "c1": AccountTruth("hijacked", "hijacked-0", 120),
    }
    # when a1, b1, one genuine account and an unknown id are flagged
    result = score(truth, {"a1", "b1", "g1", "nobody"})

    # then
    assert result["true_positives"] == 2
    assert result["false_positives"] == 2
    assert result["unknown_flagged"] == 1
    assert result["precision"] == 0.5
    assert result["recall"] == 0.5
    assert result["f1"] == 0.5
    assert result["genuine_flagged_per_million"] == 500_000.0
    assert result["families"] == {
        "lockstep": {"accounts": 2, "flagged": 1, "precision": 1 / 3, "recall": 0.5, "f1": 0.4},
        "hijacked": {"accounts": 1, "flagged": 0, "precision": 0.0, "recall": 0.0, "f1": None},
        "one_shot": {"accounts": 1, "flagged": 1, "precision": 1 / 3, "recall": 1.0, "f1": 0.5},
    }
    assert result["macro_recall"] == 0.5
    assert result["bands"]["10-29"]["recall"] == 0.5
    assert result["bands"]["30-99"]["recall"] == 1.0
    assert result["bands"]["100-300"]["recall"] == 0.0
    # and a perfect answer scores 1 with nobody genuine flagged
    perfect = score(truth, {"a1", "a2", "b1", "c1"})
    assert (perfect["precision"], perfect["recall"], perfect["macro_recall"]) == (1.0, 1.0, 1.0)
    assert perfect["genuine_flagged_per_million"] == 0.0
