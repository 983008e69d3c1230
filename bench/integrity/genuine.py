"""The genuine background: accounts, rhythm, videos, fans, group chats, networks, devices
(docs/integrity-bench.md, "Genuine behaviour")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.integrity.world import (
    DAY_US,
    HOUR_US,
    MINUTE_US,
    TIME_ZONE_SHARES,
    TIME_ZONES,
    Events,
    IpTable,
    Videos,
    events_of,
    hex_ids,
    hosting_v4,
    local_hour_weekday,
    public_v4,
    times_by_rhythm,
)


# ---------------------------------------------------------------------------------------------
# The genuine background
# ---------------------------------------------------------------------------------------------
@dataclass
class Genuine:
    events: Events
    user_ids: np.ndarray
    video_ids: np.ndarray
    video_creator: np.ndarray  # user index
    device_ids: np.ndarray
    ips: IpTable
    videos: Videos
    carrier_ips: list[np.ndarray]
    likes_per_user: np.ndarray
    creator_users: np.ndarray


def genuine_generate(seed: int, likes: int, days: int) -> Genuine:
    streams = np.random.SeedSequence([seed, 0x6E0]).spawn(6)
    rp, rv, rl, rc, rn, rid = (np.random.default_rng(s) for s in streams)
    horizon = days * DAY_US

    n_users = max(3000, likes // 20)
    n_creators = max(100, n_users // 40)
    n_videos = max(1500, likes // 80)

    # Accounts: heavy-tailed activity, a time zone, 1-3 devices.
    activity = rp.lognormal(0.0, 1.35, n_users)
    session_likes = rp.poisson(activity / activity.sum() * likes * 0.93)
    session_likes = np.minimum(session_likes, 4000)
    tz_us = (rp.choice(TIME_ZONES, n_users, p=TIME_ZONE_SHARES) * HOUR_US).astype(np.int64)
    creator_users = rp.choice(n_users, n_creators, replace=False).astype(np.int32)
    creator_rank = rp.permutation(n_creators)
    creator_pop = rp.lognormal(0.0, 0.5, n_creators) / (creator_rank + 5.0) ** 1.05

    # Videos: creators post in proportion to their reach; popularity and decay per video.
    post_weight = np.sqrt(creator_pop)
    video_creator_index = rv.choice(n_creators, n_videos, p=post_weight / post_weight.sum())
    published = (rv.random(n_videos) * (horizon + 5 * DAY_US)).astype(np.int64) - 5 * DAY_US
    popularity = rv.lognormal(0.0, 1.3, n_videos) * creator_pop[video_creator_index]
    half_life = rv.lognormal(np.log(14.0), 0.6, n_videos)
    videos = Videos(video_creator_index.astype(np.int32), published, popularity, half_life)

    # Follows: 1-15 creators each, by reach.
    follows = np.minimum(1 + rp.poisson(2.5, n_users), 15)
    follow_offsets = np.concatenate([[0], np.cumsum(follows)])
    followed = rp.choice(n_creators, int(follows.sum()), p=creator_pop / creator_pop.sum())

    # Devices: every account 1-3 (phone, tablet, old phone); some households share a tablet.
    devices_per_user = 1 + (rn.random(n_users) < 0.3) + (rn.random(n_users) < 0.07)
    device_offsets = np.concatenate([[0], np.cumsum(devices_per_user)]).astype(np.int64)
    n_user_devices = int(device_offsets[-1])

    # Households (1-5 people) behind one home address (v4, or v6 for a fifth of them).
    order = rn.permutation(n_users)
    sizes = rn.choice([1, 2, 3, 4, 5], n_users, p=[0.35, 0.3, 0.2, 0.1, 0.05])
    cuts = np.cumsum(sizes)
    cuts = cuts[cuts < n_users]
    household_of = np.empty(n_users, dtype=np.int32)
    household_of[order] = np.searchsorted(cuts, np.arange(n_users), side="right")
    n_households = int(household_of.max()) + 1
    household_size = np.bincount(household_of, minlength=n_households)
    shared_tablet = (household_size >= 2) & (rn.random(n_households) < 0.15)
    tablet_device = np.full(n_households, -1, dtype=np.int64)
    tablet_device[shared_tablet] = 1 + n_user_devices + np.arange(int(shared_tablet.sum()))
    n_devices = 1 + n_user_devices + int(shared_tablet.sum())

    ips = IpTable()
    home_v6 = rn.random(n_households) < 0.2
    home_ip = np.empty(n_households, dtype=np.int32)
    home_ip[~home_v6] = ips.add_v4(public_v4(rn, int((~home_v6).sum())))
    prefixes = rn.integers(0, 2**32, int(home_v6.sum()))
    hosts = rn.integers(0, 2**16, (int(home_v6.sum()), 2))
    home_ip[home_v6] = ips.add(
        [
            f"2a02:{(p >> 16) & 0xFFFF:x}:{p & 0xFFFF:x}:{(p * 7) & 0xFFFF:x}"
            f"::{h1:x}:{h2:x}".encode()
            for p, (h1, h2) in zip(prefixes.tolist(), hosts.tolist(), strict=True)
        ]
    )
    # Offices (a third of the accounts work in one: 10-2,000 people, 1-3 addresses).
    office_worker = rn.random(n_users) < 0.33
    n_offices = max(5, int(office_worker.sum()) // 40)
    office_weights = rn.lognormal(0.0, 1.2, n_offices)
    office_of = rn.choice(n_offices, n_users, p=office_weights / office_weights.sum())
    office_ips = ips.add_v4(public_v4(rn, n_offices * 3)).reshape(n_offices, 3)
    office_ip_count = rn.integers(1, 4, n_offices)
    # Mobile carriers behind CGNAT pools (hundreds of accounts per address over the weeks).
    n_carriers = 4
    carrier_of = rn.choice(n_carriers, n_users, p=[0.4, 0.3, 0.2, 0.1])
    pool = max(30, n_users // 600)
    carrier_ips = [
        ips.add_v4(public_v4(rn, pool, np.array([37 + 10 * c, 92 + c, 178 + c])))
        for c in range(n_carriers)
    ]
    # VPN users go out through a few providers' exits (in hosting blocks).
    vpn_user = rn.random(n_users) < 0.06
    vpn_exits = ips.add_v4(hosting_v4(rn, 120))

    def context(
        users: np.ndarray, ts: np.ndarray, r: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Device and address of each (user, moment): home, office, mobile or VPN."""
        n = len(users)
        hour, weekday = local_hour_weekday(ts, tz_us[users])
        u1, u2, u3 = r.random(n), r.random(n), r.random(n)
        at_office = office_worker[users] & (weekday < 5) & (hour >= 9) & (hour < 18) & (u1 < 0.75)
        on_vpn = ~at_office & vpn_user[users] & (u2 < 0.7)
        night = (hour >= 22) | (hour < 7)
        mobile = ~at_office & ~on_vpn & (u3 < np.where(night, 0.15, 0.5))
        home = ~at_office & ~on_vpn & ~mobile
        ip = np.empty(n, dtype=np.int32)
        ip[home] = home_ip[household_of[users[home]]]
        office = office_of[users[at_office]]
        ip[at_office] = office_ips[office, r.integers(0, 3, len(office)) % office_ip_count[office]]
        ip[on_vpn] = vpn_exits[r.integers(0, len(vpn_exits), int(on_vpn.sum()))]
        for c in range(n_carriers):
            m = mobile & (carrier_of[users] == c)
            ip[m] = carrier_ips[c][r.integers(0, pool, int(m.sum()))]
        # the first device most of the time; the household tablet at home now and then
        which = np.where(
            r.random(n) < 0.6, 0, (r.random(n) * devices_per_user[users]).astype(np.int64)
        )
        device = (1 + device_offsets[users] + which).astype(np.int32)
        tablet = tablet_device[household_of[users]]
        on_tablet = home & (tablet >= 0) & (r.random(n) < 0.2)
        device[on_tablet] = tablet[on_tablet]
        device[r.random(n) < 0.004] = 0  # an old app version sends no device id
        return device, ip

    # Sessions: likes come in sittings of a few minutes, at the hours people have time.
    active = np.flatnonzero(session_likes > 0)
    sessions = 1 + (session_likes[active] - 1) // 5
    session_user = np.repeat(active, sessions).astype(np.int32)
    session_start = times_by_rhythm(rl, len(session_user), days, tz_us[session_user])
    session_length = rl.lognormal(np.log(6 * MINUTE_US), 0.8, len(session_user))
    session_device, session_ip = context(session_user, session_start, rl)
    first_session = np.concatenate([[0], np.cumsum(sessions)[:-1]])
    like_user = np.repeat(active, session_likes[active]).astype(np.int32)
    position = np.repeat(np.arange(len(active)), session_likes[active])
    like_session = first_session[position] + (
        rl.random(len(like_user)) * sessions[position]
    ).astype(np.int64)
    like_ts = session_start[like_session] + (
        rl.random(len(like_user)) * session_length[like_session]
    ).astype(np.int64)
    like_ts = np.minimum(like_ts, horizon - 1)

    # What they like: a creator they follow (a recent video of theirs), else what is popular.
    like_video = videos.sample(rl, like_ts)
    fan = rl.random(len(like_user)) < 0.3
    fan_users = like_user[fan]
    pick = follow_offsets[fan_users] + (rl.random(len(fan_users)) * follows[fan_users]).astype(
        np.int64
    )
    fan_creator = followed[pick].astype(np.int64)
    video_key = video_creator_index.astype(np.int64) * (1 << 42) + (published + 10 * DAY_US)
    by_key = np.argsort(video_key, kind="stable")
    sorted_key = video_key[by_key]
    position = (
        np.searchsorted(sorted_key, fan_creator * (1 << 42) + like_ts[fan] + 10 * DAY_US, "right")
        - 1
    )
    position -= np.minimum(rl.geometric(0.6, len(position)) - 1, 4)
    ok = position >= 0
    ok[ok] = video_creator_index[by_key[position[ok]]] == fan_creator[ok]
    fan_index = np.flatnonzero(fan)
    like_video[fan_index[ok]] = by_key[position[ok]]
    session_events = events_of(
        like_user,
        like_video,
        like_ts,
        session_device[like_session],
        session_ip[like_session],
        False,
    )

    # Group chats of friends: someone shares a video, others like it within the hour.
    n_chats = max(50, n_users // 12)
    chat_size = rc.integers(3, 13, n_chats)
    chat_members = rc.choice(n_users, int(chat_size.sum()))
    chat_offsets = np.concatenate([[0], np.cumsum(chat_size)])
    shares_per_chat = rc.poisson(days * rc.lognormal(np.log(0.12), 0.7, n_chats))
    share_chat = np.repeat(np.arange(n_chats), shares_per_chat)
    sharer = chat_members[
        chat_offsets[share_chat]
        + (rc.random(len(share_chat)) * chat_size[share_chat]).astype(np.int64)
    ]
    share_ts = times_by_rhythm(rc, len(share_chat), days, tz_us[sharer])
    share_video = videos.sample(rc, share_ts)
    take_part = rc.beta(3, 3, n_chats)
    member_share = np.repeat(np.arange(len(share_chat)), chat_size[share_chat])
    member_slot = np.arange(len(member_share)) - np.repeat(
        np.concatenate([[0], np.cumsum(chat_size[share_chat])[:-1]]), chat_size[share_chat]
    )
    member = chat_members[chat_offsets[share_chat[member_share]] + member_slot]
    likes_it = rc.random(len(member)) < take_part[share_chat[member_share]]
    is_sharer = member == sharer[member_share]
    likes_it |= is_sharer
    member, member_share, is_sharer = member[likes_it], member_share[likes_it], is_sharer[likes_it]
    delay = np.minimum(rc.exponential(15 * MINUTE_US, len(member)), 3 * HOUR_US).astype(np.int64)
    delay[is_sharer] = -(rc.random(int(is_sharer.sum())) * 5 * MINUTE_US).astype(np.int64)
    chat_ts = np.clip(share_ts[member_share] + delay, 0, horizon - 1)
    chat_device, chat_ip = context(member, chat_ts, rc)
    chat_events = events_of(member, share_video[member_share], chat_ts, chat_device, chat_ip, False)

    events = Events.concat([session_events, chat_events])
    # one like per (user, video): the earliest stays
    order = np.lexsort((events.ts, events.video, events.user))
    pair = events.user[order].astype(np.int64) * n_videos + events.video[order]
    first = np.concatenate([[True], pair[1:] != pair[:-1]])
    events = events.take(np.sort(order[first]))
    events = events.take(np.argsort(events.ts, kind="stable"))

    user_ids = hex_ids(rid, n_users, 12)
    video_ids = np.char.add(b"v", hex_ids(rid, n_videos, 11))
    device_ids = np.concatenate([np.array([b""], dtype="S16"), hex_ids(rid, n_devices - 1, 16)])
    return Genuine(
        events=events,
        user_ids=user_ids,
        video_ids=video_ids,
        video_creator=creator_users[video_creator_index],
        device_ids=device_ids,
        ips=ips,
        videos=videos,
        carrier_ips=carrier_ips,
        likes_per_user=np.bincount(events.user, minlength=n_users),
        creator_users=creator_users,
    )
