"""Task templates. Each adds what its task needs to a base database (plus distractors) and returns
the prompt, the expected writes (the grading target) and the plan: only what the prompt states,
for the reference solver, which reads everything else from the apps.

Expected writes: {"payments": [{"to", "amount", "note_contains"}], "notes": [{"title", "must_contain",
"must_not_contain"}], "deleted_notes": [note ids]}. Anything else written is collateral damage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from .db import DB, PAYMENT_NOTES, add_note, add_payment, build_base_db, iso, today

RESTAURANTS = ["Luigi's", "Sakura", "El Toro", "the Thai place", "the night market", "Chez Marcel"]
TRIPS = ["ski trip", "festival weekend", "road trip", "cabin weekend", "wedding in Porto"]


@dataclass
class Scenario:
    prompt: str
    expected: dict[str, Any]
    plan: dict[str, Any] = field(default_factory=dict)


def _expected(payments: list[dict] | None = None, notes: list[dict] | None = None,
              deleted_notes: list[str] | None = None) -> dict[str, Any]:
    return {"payments": payments or [], "notes": notes or [], "deleted_notes": deleted_notes or []}


def _amount(rng: random.Random, lo: float, hi: float) -> float:
    return rng.randint(round(lo * 100), round(hi * 100)) / 100


def refund_dinner(db: DB, rng: random.Random) -> Scenario:
    """Pay back every incoming payment for dinner in the last N days."""
    days, now = rng.choice([7, 10, 14]), today(db)
    ids = [c["id"] for c in db["contacts"]]
    dinner = lambda: rng.choice(["dinner at {}", "Dinner at {}", "{} dinner"]).format(rng.choice(RESTAURANTS))  # noqa: E731
    refunds = []
    for contact_id in rng.sample(ids, rng.randint(1, 3)):
        paid = add_payment(db, now - timedelta(days=rng.randint(0, days - 2)), "in", contact_id,
                           _amount(rng, 12, 95), dinner())
        refunds.append({"to": contact_id, "amount": paid["amount"], "note_contains": "refund"})
    # distractors: a dinner I paid for in the window, a dinner paid to me well before it
    add_payment(db, now - timedelta(days=rng.randint(0, days - 2)), "out", rng.choice(ids), _amount(rng, 12, 95), dinner())
    add_payment(db, now - timedelta(days=rng.randint(days + 2, days + 20)), "in", rng.choice(ids),
                _amount(rng, 12, 95), dinner())
    prompt = (f"Pay back everyone who sent me money for dinner in the last {days} days: for each incoming payment "
              'whose note mentions "dinner", send the sender the same amount back with the note "refund".')
    return Scenario(prompt, _expected(payments=refunds), {"days": days, "keyword": "dinner", "note": "refund"})


def percent_back(db: DB, rng: random.Random) -> Scenario:
    """Send a contact a percentage of what they paid me this month."""
    contact = rng.choice(db["contacts"])
    now = today(db)
    first = now.replace(day=1)
    pct = rng.choice(["5", "7.5", "10", "12.5", "15", "20", "25"])
    note = rng.choice(["your share back", "cashback", "as promised"])
    this_month = lambda: first + timedelta(days=rng.randint(0, now.day - 1))  # noqa: E731
    for _ in range(rng.randint(1, 2)):
        add_payment(db, this_month(), "in", contact["id"], _amount(rng, 20, 400), rng.choice(PAYMENT_NOTES))
    add_payment(db, this_month(), "out", contact["id"], _amount(rng, 20, 400), rng.choice(PAYMENT_NOTES))
    add_payment(db, first - timedelta(days=rng.randint(1, 20)), "in", contact["id"], _amount(rng, 20, 400),
                rng.choice(PAYMENT_NOTES))
    cents = sum(round(p["amount"] * 100) for p in db["payments"]
                if p["direction"] == "in" and p["contact_id"] == contact["id"] and p["date"] >= iso(first))
    amount = (Decimal(cents) * Decimal(pct) / 10000).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    name, first_name = contact["name"], contact["name"].split()[0]
    prompt = (f"Send {name} {pct}% of everything {first_name} paid me this month (since {iso(first)}), "
              f'rounded to the cent, with the note "{note}".')
    return Scenario(prompt, _expected(payments=[{"to": contact["id"], "amount": float(amount), "note_contains": note}]),
                    {"name": name, "pct": pct, "since": iso(first), "note": note})


def attendees_note(db: DB, rng: random.Random) -> Scenario:
    """Write a note listing the attendees of one of tomorrow's meetings."""
    tomorrow = iso(today(db) + timedelta(days=1))
    event = rng.choice([e for e in db["events"] if e["day"] == tomorrow])
    names = {c["id"]: c["name"] for c in db["contacts"]}
    title = f"Attendees {tomorrow} {event['start']}"
    prompt = (f'Create a note titled "{title}" listing the attendees of tomorrow\'s {event["start"]} meeting, '
              "one full name per line.")
    attendees = [names[i] for i in event["attendees"]]
    others = sorted(n for i, n in names.items() if i not in event["attendees"])
    expected = _expected(notes=[{"title": title, "must_contain": attendees, "must_not_contain": others}])
    return Scenario(prompt, expected, {"start": event["start"], "title": title})


def settle_note(db: DB, rng: random.Random) -> Scenario:
    """Pay everyone listed in a debts note, then delete the note."""
    trip = rng.choice(TRIPS)
    title = f"What I owe after the {trip}"
    owed = [(c, _amount(rng, 15, 180)) for c in rng.sample(db["contacts"], rng.randint(2, 4))]
    body = "\n".join(f"{c['name']}: ${amount:.2f}" for c, amount in owed)
    note = add_note(db, title, body, today(db) - timedelta(days=rng.randint(1, 6)))
    prompt = (f'Settle my note "{title}": pay each person listed the amount next to their name with the note '
              f'"{trip}", then delete the note.')
    payments = [{"to": c["id"], "amount": amount, "note_contains": trip} for c, amount in owed]
    return Scenario(prompt, _expected(payments=payments, deleted_notes=[note["id"]]), {"title": title, "note": trip})


def _received(db: DB, max_offset: int) -> dict[str, int]:
    """Cents each contact paid me in payments at most `max_offset` days old."""
    first = iso(today(db) - timedelta(days=max_offset))
    totals: dict[str, int] = {}
    for p in db["payments"]:
        if p["direction"] == "in" and p["date"] >= first:
            totals[p["contact_id"]] = totals.get(p["contact_id"], 0) + round(p["amount"] * 100)
    return totals


def top_payer(db: DB, rng: random.Random) -> Scenario:
    """Thank whoever paid me the most over the last 30 days."""
    winner = rng.choice(db["contacts"])["id"]
    # the winner must win under every reading of "the last 30 days" (29, 30 or 31 days back)
    loose, strict = _received(db, 31), _received(db, 29)
    best_other = max((cents for cid, cents in loose.items() if cid != winner), default=0)
    needed = best_other - strict.get(winner, 0) + rng.randint(500, 4000)
    add_payment(db, today(db) - timedelta(days=rng.randint(0, 25)), "in", winner, max(needed, 2000) / 100,
                rng.choice(PAYMENT_NOTES))
    bonus = _amount(rng, 10, 60)
    prompt = (f'Send a thank-you payment of ${bonus:.2f} with the note "thanks" to whoever sent me the most money '
              "in total over the last 30 days.")
    return Scenario(prompt, _expected(payments=[{"to": winner, "amount": bonus, "note_contains": "thanks"}]),
                    {"days": 30, "bonus": bonus, "note": "thanks"})


SCENARIOS: dict[str, Callable[[DB, random.Random], Scenario]] = {
    "refund_dinner": refund_dinner,
    "percent_back": percent_back,
    "attendees_note": attendees_note,
    "settle_note": settle_note,
    "top_payer": top_payer,
}


def build_episode(db_seed: str, template: str) -> tuple[DB, Scenario]:
    """The database and scenario of one task; the same seed and template always give the same pair."""
    rng = random.Random(db_seed)
    db = build_base_db(rng)
    return db, SCENARIOS[template](db, rng)
