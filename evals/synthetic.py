"""Deterministic synthetic chat turns for the speed benchmarks (bench_ingest_query, bench_live): unique,
chat-like, and the same for a given seed on every machine."""

from __future__ import annotations

import random

NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj",
         "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Wendy"]
PLACES = ["Paris", "Lisbon", "Osaka", "Nairobi", "Toronto", "Lima", "Oslo", "Hanoi", "Austin", "Cairo", "Dublin",
          "Seoul", "Krakow", "Denver", "Porto", "Quito"]
THINGS = ["a red bicycle", "the garden shed", "a sourdough starter", "the quarterly report", "a vintage camera",
          "the new laptop", "a chess set", "the kitchen sink", "a hiking trail map", "the piano lessons",
          "a jar of honey", "the car insurance", "a birthday cake", "the tax forms", "a pair of skis"]
TEMPLATES = [
    "{a} told {b} that {t} arrived in {p} last {d}.",
    "Yesterday {a} and {b} argued about {t} while waiting in {p}.",
    "{a} wants to sell {t} before moving to {p} in {m}.",
    "Reminder: {a} promised {b} to bring {t} to the meeting in {p} on {d}.",
    "{a} said the trip to {p} was cancelled because of {t}.",
    "In {m}, {a} borrowed {t} from {b} and still has not returned it.",
    "{a} asked whether {b} had ever been to {p}; {b} mentioned {t} instead.",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "March", "May", "July", "September", "November"]


def turn(rng: random.Random, a: str, b: str) -> str:
    """One turn between ``a`` and ``b`` (draws template, thing, place, day, month from ``rng`` in that order)."""
    return rng.choice(TEMPLATES).format(a=a, b=b, t=rng.choice(THINGS), p=rng.choice(PLACES), d=rng.choice(DAYS),
                                        m=rng.choice(MONTHS))
