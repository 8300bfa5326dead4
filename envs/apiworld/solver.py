"""Reference solvers, one per template. They know only what the prompt says (the task's plan):
each step calls the apps in code and prints JSON; the solver reads it back and acts on it.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, Callable, Generator

from agentkd import Task

Solver = Generator[str, str, None]


def step(thought: str, code: str) -> str:
    return f"Thought: {thought}\n```python\n{code}\n```"


def last_json(observation: str) -> Any:
    """The JSON value printed on the observation's last line."""
    return json.loads(observation.strip().splitlines()[-1])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _send_lines(payments: list[tuple[str, float]], note: str) -> str:
    return "\n".join(f"print(json.dumps(payments_send({to!r}, {amount!r}, {note!r})))" for to, amount in payments)


def refund_dinner(plan: dict[str, Any]) -> Solver:
    days, keyword, note = plan["days"], plan["keyword"], plan["note"]
    obs = yield step(
        f"I need the payments I received in the last {days} days whose note mentions {keyword}.",
        f"import json\npayments = payments_list({days})\n"
        f'matches = [p for p in payments if p["direction"] == "in" and {keyword!r} in p["note"].lower()]\n'
        "print(json.dumps(matches))",
    )
    found = last_json(obs)
    listing = ", ".join(f"{p['amount']:.2f} from {p['contact_id']} ({p['note']})" for p in found)
    obs = yield step(f"Payments that mention {keyword}: {listing}. I send each amount back to its sender.",
                     _send_lines([(p["contact_id"], p["amount"]) for p in found], note))
    yield step("All refunds went through.", f'final_answer("Refunded {len(found)} {keyword} payments.")')


def percent_back(plan: dict[str, Any]) -> Solver:
    name, pct, since, note = plan["name"], plan["pct"], plan["since"], plan["note"]
    obs = yield step(f"I need today's date and the contact id of {name}.",
                     f"import json\nprint(calendar_today())\nprint(json.dumps(contacts_search({name!r})))")
    lines = obs.strip().splitlines()
    today = date.fromisoformat(lines[0].strip())
    contact = next(c for c in json.loads(lines[-1]) if c["name"] == name)
    days = (today - date.fromisoformat(since)).days
    obs = yield step(
        f"{name} is {contact['id']}. Today is {today.isoformat()}, so since {since} is the last {days} days. "
        f"I add up what {name.split()[0]} paid me in that time.",
        f"received = [p for p in payments_list({days}) if p['direction'] == 'in' and p['contact_id'] == {contact['id']!r}]\n"
        "print(json.dumps(received))\ntotal = round(sum(p['amount'] for p in received), 2)\nprint(total)",
    )
    lines = obs.strip().splitlines()
    count, total = len(json.loads(lines[0])), float(lines[-1])
    obs = yield step(f"{name.split()[0]} paid me {total:.2f} this month ({_plural(count, 'payment')}); {pct}% of it goes back.",
                     f"amount = round(total * {pct} / 100, 2)\n"
                     f"print(json.dumps(payments_send({contact['id']!r}, amount, {note!r})))")
    sent = last_json(obs)
    yield step("The payment went through.", f'final_answer("Sent {sent["amount"]:.2f} to {name}.")')


def attendees_note(plan: dict[str, Any]) -> Solver:
    start, title = plan["start"], plan["title"]
    obs = yield step(
        f"I need tomorrow's date and the meeting that starts at {start}.",
        "import json\nfrom datetime import date, timedelta\n"
        "tomorrow = (date.fromisoformat(calendar_today()) + timedelta(days=1)).isoformat()\n"
        f"meetings = [e for e in calendar_list(tomorrow) if e['start'] == {start!r}]\nprint(json.dumps(meetings))",
    )
    meeting = last_json(obs)[0]
    ids = meeting["attendees"]
    obs = yield step(f"Tomorrow at {start} is \"{meeting['title']}\" with attendees {', '.join(ids)}. "
                     "I look up their names.",
                     f"names = [contacts_get(i)['name'] for i in {ids!r}]\nprint(json.dumps(names))")
    names = last_json(obs)
    obs = yield step(f"The attendees are {', '.join(names)}. I write the note.",
                     f"print(json.dumps(notes_create({title!r}, {chr(10).join(names)!r})))")
    note = last_json(obs)
    yield step(f"Note {note['id']} is created.", f'final_answer("Created note {note["id"]} with {len(names)} names.")')


DEBT_LINE = re.compile(r"^\s*(.+?):\s*\$?\s*([\d.]+)\s*$")


def settle_note(plan: dict[str, Any]) -> Solver:
    title, note = plan["title"], plan["note"]
    obs = yield step(f'I look for the note "{title}".',
                     f"import json\nprint(json.dumps([n for n in notes_list() if n['title'] == {title!r}]))")
    note_id = last_json(obs)[0]["id"]
    obs = yield step(f"It is {note_id}. I read it.", f"print(notes_get({note_id!r})['body'])")
    debts = [(m.group(1), float(m.group(2))) for m in map(DEBT_LINE.match, obs.splitlines()) if m]
    names = [n for n, _ in debts]
    obs = yield step("The note says I owe " + ", ".join(f"{n} {a:.2f}" for n, a in debts)
                     + ". I need their contact ids.",
                     f"ids = {{name: [c['id'] for c in contacts_search(name) if c['name'] == name][0] for name in {names!r}}}\n"
                     "print(json.dumps(ids))")
    ids = last_json(obs)
    obs = yield step("I pay each of them, then delete the note.",
                     _send_lines([(ids[n], a) for n, a in debts], note)
                     + f"\nprint(json.dumps(notes_delete({note_id!r})))")
    yield step("Everyone is paid and the note is gone.",
               f'final_answer("Paid {len(debts)} people and deleted note {note_id}.")')


def top_payer(plan: dict[str, Any]) -> Solver:
    days, bonus, note = plan["days"], plan["bonus"], plan["note"]
    obs = yield step(
        f"I add up what each contact sent me over the last {days} days.",
        f"import json\ntotals = {{}}\nfor p in payments_list({days}):\n    if p['direction'] == 'in':\n"
        "        totals[p['contact_id']] = round(totals.get(p['contact_id'], 0) + p['amount'], 2)\n"
        "ranking = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)\nprint(json.dumps(ranking[:3]))",
    )
    (top, amount), *rest = last_json(obs)
    runner_up = f"; next is {rest[0][0]} with {rest[0][1]:.2f}" if rest else ""
    obs = yield step(f"{top} sent me the most, {amount:.2f}{runner_up}. I send the thank-you payment.",
                     f"print(json.dumps(payments_send({top!r}, {bonus!r}, {note!r})))")
    yield step("The thank-you payment went through.", f'final_answer("Sent {bonus:.2f} to {top}.")')


SOLVERS: dict[str, Callable[[dict[str, Any]], Solver]] = {
    "refund_dinner": refund_dinner,
    "percent_back": percent_back,
    "attendees_note": attendees_note,
    "settle_note": settle_note,
    "top_payer": top_payer,
}


def reference_solver(task: Task) -> Solver:
    """Solve a task with its template's scripted solver."""
    yield from SOLVERS[task.metadata["template"]](task.metadata["plan"])
