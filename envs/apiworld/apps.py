"""The apps' APIs: contacts, calendar, payments and notes, as agent tools over the episode's database.

Every tool takes the database as `state` (hidden from the model) and returns JSON-able copies,
never the live records. Bad arguments raise ValueError with a message that says what to pass.
"""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

from agentkd import tool

from .db import DB, add_note, add_payment, contact_by_id, iso, today


def _day(text: str) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"day must be a date written YYYY-MM-DD, got {text!r}") from None


def _find(db: DB, table: str, record_id: str, what: str, hint: str) -> dict[str, Any]:
    record = next((r for r in db[table] if r["id"] == record_id), None)
    if record is None:
        raise ValueError(f"no {what} with id {record_id!r}; {hint}")
    return record


@tool
def calendar_today(state: dict) -> str:
    """Today's date, as YYYY-MM-DD."""
    return state["meta"]["today"]


@tool
def contacts_search(name: str, state: dict) -> list[dict]:
    """Contacts whose name or email contains `name` (case-insensitive). Each: id, name, email, phone."""
    needle = str(name).strip().lower()
    return [dict(c) for c in state["contacts"] if needle in c["name"].lower() or needle in c["email"].lower()]


@tool
def contacts_get(contact_id: str, state: dict) -> dict:
    """The contact with this id (e.g. "c03"): id, name, email, phone."""
    return dict(_find(state, "contacts", contact_id, "contact", "ids come from contacts_search"))


@tool
def payments_list(since_days: int, state: dict) -> list[dict]:
    """Payments dated within the last `since_days` days (date >= today - since_days), newest first.

    Each: id, date, direction ("in": the contact paid me, "out": I paid the contact), contact_id, amount, note.
    """
    if isinstance(since_days, bool) or not isinstance(since_days, int) or since_days < 0:
        raise ValueError(f"since_days must be a whole number of days >= 0, got {since_days!r}")
    first = iso(today(state) - timedelta(days=since_days))
    recent = [dict(p) for p in state["payments"] if p["date"] >= first]
    return sorted(recent, key=lambda p: (p["date"], p["id"]), reverse=True)


@tool
def payments_send(to: str, amount: float, note: str, state: dict) -> dict:
    """Send `amount` dollars (rounded to the cent) to the contact whose id is `to`, with a note. Returns the payment."""
    if contact_by_id(state, to) is None:
        raise ValueError(f"unknown contact id {to!r}; pass a contact's id (e.g. 'c03') from contacts_search")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or round(amount, 2) <= 0:
        raise ValueError(f"amount must be a positive number of dollars, got {amount!r}")
    return dict(add_payment(state, today(state), "out", to, amount, str(note)))


@tool
def calendar_list(day: str, state: dict) -> list[dict]:
    """Events on `day` (YYYY-MM-DD) by start time. Each: id, title, day, start, end, attendees (contact ids)."""
    wanted = iso(_day(day))
    return sorted((copy.deepcopy(e) for e in state["events"] if e["day"] == wanted), key=lambda e: e["start"])


@tool
def notes_list(state: dict) -> list[dict]:
    """All notes, without their bodies: id, title, created. Read one with notes_get."""
    return [{"id": n["id"], "title": n["title"], "created": n["created"]} for n in state["notes"]]


@tool
def notes_get(note_id: str, state: dict) -> dict:
    """The note with this id: id, title, body, created."""
    return dict(_find(state, "notes", note_id, "note", "ids come from notes_list"))


@tool
def notes_create(title: str, body: str, state: dict) -> dict:
    """Create a note with this title and body. Returns the new note."""
    if not str(title).strip():
        raise ValueError("a note needs a non-empty title")
    return dict(add_note(state, str(title), str(body), today(state)))


@tool
def notes_delete(note_id: str, state: dict) -> dict:
    """Delete the note with this id. Returns the deleted note."""
    note = _find(state, "notes", note_id, "note", "ids come from notes_list")
    state["notes"].remove(note)
    return dict(note)


TOOLS = [calendar_today, contacts_search, contacts_get, payments_list, payments_send, calendar_list,
         notes_list, notes_get, notes_create, notes_delete]
