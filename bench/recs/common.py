"""Readers for the recommender input files, written independently of the Rust crate.

Same rules as crates/playhead-recs (documented there): a play is positive at percent >= 50 or with
no percent; episodes count toward their series; a recommended series is played from its first
available regular episode the profile has not played (specials only for a show with nothing else).
"""
import csv
import json
from collections import defaultdict
from datetime import datetime

POSITIVE_PERCENT = 50.0


def parse_time_ms(s):
    s = s.strip()
    try:
        return int(s) * 1000
    except ValueError:
        pass
    try:
        return int(round(float(s) * 1000))
    except ValueError:
        pass
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)


def read_catalog(path):
    """Titles by id, and item (movie or series) of each title."""
    titles = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                t = json.loads(line)
                titles[t["id"]] = t
    item_of = {}
    episodes = defaultdict(list)
    for tid, t in titles.items():
        if t["kind"] == "episode":
            item_of[tid] = t["series_id"]
            episodes[t["series_id"]].append(tid)
        else:
            item_of[tid] = tid

    def key(tid):
        t = titles[tid]
        season = t.get("season")
        season = 1 if season is None else season
        return (season == 0, season, t.get("episode") or 0, tid)

    for s in episodes:
        episodes[s].sort(key=key)
    avail = {tid: (parse_time_ms(t["available_from"]) if t.get("available_from") else None) for tid, t in titles.items()}
    return titles, item_of, episodes, avail


def read_interactions(path, item_of):
    """Per profile: list of (at_ms, title, positive), time-ordered (file order breaks ties)."""
    plays = defaultdict(list)
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        for n, row in enumerate(r):
            tid = row["title_id"].strip()
            if tid not in item_of:
                continue
            pct = (row.get("percent") or "").strip()
            positive = (pct == "") or float(pct) >= POSITIVE_PERCENT
            plays[row["profile_id"].strip()].append((parse_time_ms(row["watched_at"]), n, tid, positive))
    return {p: [(at, t, pos) for at, _, t, pos in sorted(v)] for p, v in plays.items()}


def read_queries(path):
    with open(path, newline="") as f:
        return [(row["profile_id"], int(row["now_ms"])) for row in csv.DictReader(f)]


def playable(item, titles, episodes, avail, now, played):
    def available(tid):
        a = avail.get(tid)
        s = titles[tid].get("series_id")
        sa = avail.get(s) if s else None
        return (a is None or a <= now) and (sa is None or sa <= now)

    t = titles.get(item)
    if t is not None and t["kind"] == "movie":
        return item if available(item) else None
    eps = episodes.get(item, [])
    regular = [e for e in eps if titles[e].get("season") != 0]
    specials = [e for e in eps if titles[e].get("season") == 0]
    for e in regular or specials:
        if available(e) and e not in played:
            return e
    return None
