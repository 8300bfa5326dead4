"""Grading on the final database: the writes made must be exactly the writes the task asked for.

The initial database is rebuilt from the task's seed and compared table by table with the final
one. Every expected write must be there, and any other write (an extra payment or note, an edit,
a deletion) is collateral damage and fails the task. The final text answer is ignored.
"""

from __future__ import annotations

from typing import Any

from .db import DB, TABLES

AMOUNT_TOLERANCE = 0.01 + 1e-9
"""Amounts may differ by a cent (rounding half up or to even)."""


def diff_db(before: DB, after: DB) -> dict[str, dict[str, list[Any]]]:
    """Per table: records added, ids removed, ids changed."""
    out: dict[str, dict[str, list[Any]]] = {}
    for table in TABLES:
        old = {r["id"]: r for r in before[table]}
        new = {r["id"]: r for r in after[table]}
        out[table] = {
            "added": [r for i, r in new.items() if i not in old],
            "removed": [i for i in old if i not in new],
            "changed": [i for i, r in new.items() if i in old and r != old[i]],
        }
    return out


def _contains(text: str, part: str) -> bool:
    return part.casefold() in str(text).casefold()


def _check_payments(added: list[dict], expected: list[dict], problems: list[str]) -> None:
    left = list(added)
    for want in expected:
        match = next((p for p in left if p["contact_id"] == want["to"]
                      and p["direction"] == "out"
                      and abs(float(p["amount"]) - want["amount"]) <= AMOUNT_TOLERANCE
                      and _contains(p["note"], want["note_contains"])), None)
        if match is None:
            problems.append(f"missing payment of {want['amount']:.2f} to {want['to']} "
                            f"(note containing {want['note_contains']!r})")
        else:
            left.remove(match)
    for p in left:
        problems.append(f"unexpected payment {p['id']}: {p['amount']:.2f} to {p['contact_id']} ({p['note']!r})")


def _check_notes(added: list[dict], expected: list[dict], problems: list[str]) -> None:
    left = list(added)
    for want in expected:
        match = next((n for n in left if n["title"].strip().casefold() == want["title"].strip().casefold()), None)
        if match is None:
            problems.append(f"missing note titled {want['title']!r}")
            continue
        left.remove(match)
        missing = [s for s in want.get("must_contain", []) if not _contains(match["body"], s)]
        extra = [s for s in want.get("must_not_contain", []) if _contains(match["body"], s)]
        if missing:
            problems.append(f"note {want['title']!r} lacks {missing}")
        if extra:
            problems.append(f"note {want['title']!r} wrongly mentions {extra}")
    for n in left:
        problems.append(f"unexpected note {n['id']}: {n['title']!r}")


def check_writes(before: DB, after: DB, expected: dict[str, Any]) -> list[str]:
    """What is wrong with the writes from `before` to `after` (an empty list when they are exactly right)."""
    diff = diff_db(before, after)
    problems: list[str] = []
    _check_payments(diff["payments"]["added"], expected.get("payments", []), problems)
    _check_notes(diff["notes"]["added"], expected.get("notes", []), problems)
    to_delete = set(expected.get("deleted_notes", []))
    removed = set(diff["notes"]["removed"])
    problems += [f"note {i} was not deleted" for i in sorted(to_delete - removed)]
    problems += [f"note {i} was deleted but should not have been" for i in sorted(removed - to_delete)]
    for table in TABLES:
        problems += [f"{table} record {i} was changed" for i in diff[table]["changed"]]
        if table != "notes":
            problems += [f"{table} record {i} was deleted" for i in diff[table]["removed"]]
        if table not in ("payments", "notes"):
            problems += [f"unexpected new {table} record {r['id']}" for r in diff[table]["added"]]
    return problems
