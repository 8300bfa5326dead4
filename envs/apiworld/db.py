"""The in-memory database behind the apps: plain JSON-able dicts and lists, built from a seed.

Layout: {"meta": {"today", "me", "next"}, "contacts": [...], "payments": [...], "events": [...],
"notes": [...]}. Records of every table carry an "id"; `meta.next` holds the next id number per table.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

DB = dict[str, Any]
TABLES = ("contacts", "payments", "events", "notes")
ID_PREFIX = {"contacts": "c", "payments": "p", "events": "e", "notes": "n"}

FIRST_NAMES = ["Alice", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Gustav", "Hana", "Ibrahim", "Jonas",
               "Keiko", "Lars", "Maya", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tariq",
               "Ulla", "Viktor", "Wen", "Yara"]
LAST_NAMES = ["Moreau", "Okafor", "Lindqvist", "Tanaka", "Ferreira", "Novak", "Haddad", "Kowalski",
              "Brennan", "Achterberg", "Oyelaran", "Castellanos", "Grimaldi", "Szabo", "Whitfield", "Petrov"]
PAYMENT_NOTES = ["rent share", "concert tickets", "groceries", "taxi home", "birthday gift", "coffee",
                 "lunch", "books", "train tickets", "gym pass", "cinema", "plants", "board game", "flowers"]
EVENT_TITLES = ["Budget review", "Design sync", "1:1", "Hiring panel", "Quarterly planning", "Vendor call",
                "Team retro", "Roadmap workshop", "Customer demo", "Lunch and learn", "Security briefing"]
EVENT_STARTS = ["08:30", "09:00", "10:00", "11:30", "13:00", "14:00", "15:30", "16:00"]
NOTE_SEEDS = {
    "Groceries": "oat milk\neggs\nspinach\ncoffee beans",
    "Gift ideas": "a fountain pen\nconcert tickets\na cookbook",
    "Packing list": "passport\nchargers\nrain jacket\nhiking boots",
    "Book club": "next: The Left Hand of Darkness\nbring snacks",
    "Plumber": "call back on Friday about the kitchen tap",
}


def iso(day: date) -> str:
    return day.isoformat()


def today(db: DB) -> date:
    return date.fromisoformat(db["meta"]["today"])


def new_id(db: DB, table: str) -> str:
    """The next unused id of `table` (never reused, even after a deletion)."""
    number = db["meta"]["next"][table]
    db["meta"]["next"][table] = number + 1
    return f"{ID_PREFIX[table]}{number:03d}"


def contact_by_id(db: DB, contact_id: str) -> dict[str, Any] | None:
    return next((c for c in db["contacts"] if c["id"] == contact_id), None)


def add_payment(db: DB, day: date, direction: str, contact_id: str, amount: float, note: str) -> dict[str, Any]:
    """Append a payment record (in: the contact paid me; out: I paid the contact)."""
    record = {"id": new_id(db, "payments"), "date": iso(day), "direction": direction, "contact_id": contact_id,
              "amount": round(float(amount), 2), "note": note}
    db["payments"].append(record)
    return record


def add_note(db: DB, title: str, body: str, created: date) -> dict[str, Any]:
    record = {"id": new_id(db, "notes"), "title": title, "body": body, "created": iso(created)}
    db["notes"].append(record)
    return record


def _names(rng: random.Random, n: int) -> list[str]:
    pool = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
    chosen: list[str] = []
    used_first: set[str] = set()
    for name in rng.sample(pool, len(pool)):
        first = name.split()[0]
        if first not in used_first:  # first names unique too: "Pay Alice" is never ambiguous
            chosen.append(name)
            used_first.add(first)
        if len(chosen) == n + 1:
            break
    return chosen


def build_base_db(rng: random.Random) -> DB:
    """A user's apps: 10-14 contacts, ~60 days of payments, a week of meetings, a few notes."""
    now = date(2024, 1, 1) + timedelta(days=rng.randrange(366))
    n_contacts = rng.randint(10, 14)
    me, *names = _names(rng, n_contacts)
    db: DB = {"meta": {"today": iso(now), "me": me, "next": {t: 1 for t in TABLES}},
              "contacts": [], "payments": [], "events": [], "notes": []}
    for name in names:
        first, last = name.lower().split()
        db["contacts"].append({"id": new_id(db, "contacts"), "name": name, "email": f"{first}.{last}@example.com",
                               "phone": f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"})
    ids = [c["id"] for c in db["contacts"]]
    history = sorted(rng.randrange(61) for _ in range(rng.randint(25, 40)))
    for offset in reversed(history):
        add_payment(db, now - timedelta(days=offset), rng.choice(["in", "out"]), rng.choice(ids),
                    rng.randint(500, 15000) / 100, rng.choice(PAYMENT_NOTES))
    for offset in range(-2, 5):
        day = now + timedelta(days=offset)
        for start in sorted(rng.sample(EVENT_STARTS, rng.randint(1, 3))):
            hour, minute = map(int, start.split(":"))
            end_minutes = hour * 60 + minute + rng.choice([30, 60])
            db["events"].append({"id": new_id(db, "events"), "title": rng.choice(EVENT_TITLES), "day": iso(day),
                                 "start": start, "end": f"{end_minutes // 60:02d}:{end_minutes % 60:02d}",
                                 "attendees": sorted(rng.sample(ids, rng.randint(2, 5)))})
    for title in rng.sample(sorted(NOTE_SEEDS), rng.randint(2, 4)):
        add_note(db, title, NOTE_SEEDS[title], now - timedelta(days=rng.randint(1, 90)))
    return db
