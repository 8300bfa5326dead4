"""Problem templates: each samples awkward numbers, words a question, computes the exact answer
(with Fractions) and writes the reference solution as Python steps (thought, code).

A thought may contain "{obs}": the last line printed by the previous step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from .numbers import decimal, integer, show
from .numbers import exact as F

Values = dict[str, str]
Steps = list[tuple[str, str]]


@dataclass(frozen=True)
class Template:
    """One family of word problems."""

    name: str
    sample: Callable[[random.Random], Values]
    question: Callable[[Values], str]
    answer: Callable[[Values], Fraction]
    steps: Callable[[Values], Steps]


# inventory --------------------------------------------------------------------------------
ITEMS = [("boxes", "of screws"), ("crates", "of floor tiles"), ("rolls", "of copper cable"),
         ("cartons", "of orange juice"), ("sacks", "of rice")]


def _inventory_sample(rng: random.Random) -> Values:
    unit, goods = rng.choice(ITEMS)
    start, orders = rng.randint(20000, 90000), rng.randint(11, 29)
    size = rng.randint(301, min(2499, int(0.8 * start / orders)))
    return {"unit": unit, "goods": goods, "start": str(start), "orders": str(orders), "size": str(size),
            "received": integer(rng, 3000, 15000), "price": decimal(rng, 2.5, 49.99, 2),
            "pct": decimal(rng, 1.05, 9.95, 2, strip=True)}


def _inventory_question(v: Values) -> str:
    return (f"A warehouse holds {show(v['start'])} {v['unit']} {v['goods']}. It ships {v['orders']} orders of "
            f"{show(v['size'])} {v['unit']} each, then receives a delivery of {show(v['received'])} {v['unit']}. "
            f"All the {v['unit']} left are then sold at ${v['price']} each plus a {v['pct']}% surcharge. "
            "How many dollars does the sale bring in?")


def _inventory_answer(v: Values) -> Fraction:
    stock = F(v["start"]) - F(v["orders"]) * F(v["size"]) + F(v["received"])
    return stock * F(v["price"]) * (1 + F(v["pct"]) / 100)


def _inventory_steps(v: Values) -> Steps:
    return [
        (f"I start from {show(v['start'])} {v['unit']}, take away {v['orders']} orders of {show(v['size'])} "
         f"and add the delivery of {show(v['received'])}.",
         f"stock = {v['start']} - {v['orders']} * {v['size']} + {v['received']}\nprint(stock)"),
        (f"{{obs}} {v['unit']} are left. Each sells for ${v['price']} plus a {v['pct']}% surcharge.",
         f"revenue = stock * {v['price']} * (1 + {v['pct']} / 100)\nprint(revenue)"),
        ("The sale brings in {obs} dollars.", "final_answer(revenue)"),
    ]


# travel -----------------------------------------------------------------------------------
def _travel_sample(rng: random.Random) -> Values:
    return {"vehicle": rng.choice(["freight train", "long-distance coach", "cargo truck"]),
            "distance": decimal(rng, 400, 1999.9, 1), "share": decimal(rng, 20, 80, 1, strip=True),
            "v1": decimal(rng, 55, 95, 1), "v2": decimal(rng, 80, 130, 1), "stop": integer(rng, 12, 95)}


def _travel_question(v: Values) -> str:
    return (f"A {v['vehicle']} must cover {show(v['distance'])} km. It runs the first {v['share']}% of the distance "
            f"at an average speed of {v['v1']} km/h and the rest at {v['v2']} km/h, and it stops for {v['stop']} "
            "minutes in total on the way. How many minutes does the whole journey take?")


def _travel_answer(v: Values) -> Fraction:
    d, share = F(v["distance"]), F(v["share"]) / 100
    return (d * share / F(v["v1"]) + d * (1 - share) / F(v["v2"])) * 60 + F(v["stop"])


def _travel_steps(v: Values) -> Steps:
    return [
        (f"First I split the {show(v['distance'])} km into the first {v['share']}% and the rest.",
         f"first_leg = {v['distance']} * {v['share']} / 100\nsecond_leg = {v['distance']} - first_leg\n"
         'print(f"first leg {first_leg} km, second leg {second_leg} km")'),
        (f"So the {{obs}}. Each leg takes its length over its speed; in minutes, plus the {v['stop']} minutes "
         "of stops.",
         f"minutes = (first_leg / {v['v1']} + second_leg / {v['v2']}) * 60 + {v['stop']}\nprint(minutes)"),
        ("The journey takes {obs} minutes.", "final_answer(minutes)"),
    ]


# compound interest ------------------------------------------------------------------------
NAMES = ["Dana", "Tomasz", "Ingrid", "Ravi", "Lucia", "Kwame", "Mei", "Oskar"]
PERIODS = {"monthly": 12, "quarterly": 4}


def _interest_sample(rng: random.Random) -> Values:
    principal = rng.randint(10000, 99999)
    return {"name": rng.choice(NAMES), "principal": str(principal), "rate": decimal(rng, 1.05, 7.95, 2, strip=True),
            "compounding": rng.choice(sorted(PERIODS)), "years1": integer(rng, 3, 12),
            "withdraw": integer(rng, 1000, principal * 6 // 10), "years2": integer(rng, 2, 9)}


def _interest_question(v: Values) -> str:
    return (f"{v['name']} deposits ${show(v['principal'])} in a savings account that pays {v['rate']}% annual "
            f"interest, compounded {v['compounding']}. After {v['years1']} years {v['name']} withdraws "
            f"${show(v['withdraw'])}, and the rest stays in the account at the same rate for {v['years2']} more "
            "years. What is the final balance in dollars?")


def _interest_answer(v: Values) -> Fraction:
    m = PERIODS[v["compounding"]]
    growth = 1 + F(v["rate"]) / 100 / m
    after = F(v["principal"]) * growth ** (m * int(v["years1"]))
    return (after - F(v["withdraw"])) * growth ** (m * int(v["years2"]))


def _interest_steps(v: Values) -> Steps:
    m = PERIODS[v["compounding"]]
    return [
        (f"Compounded {v['compounding']} means {m} periods a year, each growing the balance by {v['rate']}%/{m}. "
         f"First the balance after {v['years1']} years.",
         f"growth = 1 + {v['rate']} / 100 / {m}\nbalance = {v['principal']} * growth ** ({m} * {v['years1']})\n"
         "print(balance)"),
        (f"After {v['years1']} years the balance is {{obs}} dollars. I take out the ${show(v['withdraw'])} and "
         f"let the rest grow for {v['years2']} more years.",
         f"balance = (balance - {v['withdraw']}) * growth ** ({m} * {v['years2']})\nprint(balance)"),
        ("The final balance is {obs} dollars.", "final_answer(balance)"),
    ]


# fuel delivery (unit conversion) ------------------------------------------------------------
def _delivery_sample(rng: random.Random) -> Values:
    return {"fuel": rng.choice(["diesel", "heating oil", "petrol"]), "gallons": integer(rng, 5000, 30000),
            "stations": integer(rng, 7, 37), "price": decimal(rng, 1.45, 2.199, 3)}


def _delivery_question(v: Values) -> str:
    return (f"A tanker delivers {show(v['gallons'])} US gallons of {v['fuel']} (1 US gallon = 3.78541 litres). "
            f"The {v['fuel']} is shared equally between {v['stations']} filling stations and costs €{v['price']} "
            "per litre. How many euros does each station pay?")


def _delivery_answer(v: Values) -> Fraction:
    return F(v["gallons"]) * F("3.78541") * F(v["price"]) / F(v["stations"])


def _delivery_steps(v: Values) -> Steps:
    return [
        (f"First I convert {show(v['gallons'])} US gallons to litres.", f"litres = {v['gallons']} * 3.78541\nprint(litres)"),
        (f"That is {{obs}} litres. Each of the {v['stations']} stations gets an equal share at €{v['price']} per litre.",
         f"per_station = litres / {v['stations']} * {v['price']}\nprint(per_station)"),
        ("Each station pays {obs} euros.", "final_answer(per_station)"),
    ]


# splitting a bill ---------------------------------------------------------------------------
def _bill_sample(rng: random.Random) -> Values:
    people = rng.randint(18, 60)
    bill = decimal(rng, people * 100, people * 250, 2)
    tax, tip = decimal(rng, 4.5, 10.5, 3, strip=True), rng.choice([15, 18, 20, 22])
    average = float(bill) * (1 + float(tax) / 100 + tip / 100) / people
    return {"people": str(people), "bill": bill, "tax": tax, "tip": str(tip),
            "fixed_n": integer(rng, 2, people // 4), "fixed_price": decimal(rng, average * 0.5, average * 1.2, 2)}


def _bill_question(v: Values) -> str:
    return (f"A company dinner for {v['people']} people costs ${show(v['bill'])} before tax. Sales tax is {v['tax']}% "
            f"and the tip is {v['tip']}% of the pre-tax amount. {v['fixed_n']} guests on a set menu pay "
            f"${v['fixed_price']} each (tax and tip included); the other guests split the rest of the total "
            "equally. How many dollars does each of the other guests pay?")


def _bill_answer(v: Values) -> Fraction:
    total = F(v["bill"]) * (1 + F(v["tax"]) / 100 + F(v["tip"]) / 100)
    return (total - F(v["fixed_n"]) * F(v["fixed_price"])) / (F(v["people"]) - F(v["fixed_n"]))


def _bill_steps(v: Values) -> Steps:
    return [
        (f"The total is the ${show(v['bill'])} bill plus {v['tax']}% tax and a {v['tip']}% tip, both on the "
         "pre-tax amount.",
         f"total = {v['bill']} * (1 + {v['tax']} / 100 + {v['tip']} / 100)\nprint(total)"),
        (f"The total is {{obs}} dollars. The {v['fixed_n']} set-menu guests pay ${v['fixed_price']} each; the "
         "other guests split what is left.",
         f"rest = total - {v['fixed_n']} * {v['fixed_price']}\nper_guest = rest / ({v['people']} - {v['fixed_n']})\n"
         "print(per_guest)"),
        ("Each of the other guests pays {obs} dollars.", "final_answer(per_guest)"),
    ]


# trip fuel cost (unit conversion) -----------------------------------------------------------
def _trip_sample(rng: random.Random) -> Values:
    return {"vehicle": rng.choice(["truck", "camper van", "tour bus"]), "miles": integer(rng, 1200, 9999),
            "consumption": decimal(rng, 18, 42, 1, strip=True), "price": decimal(rng, 1.45, 2.199, 3)}


def _trip_question(v: Values) -> str:
    return (f"A {v['vehicle']} drives {show(v['miles'])} miles (1 mile = 1.609344 km). It burns {v['consumption']} "
            f"litres of fuel per 100 km, and fuel costs ${v['price']} per litre. How many dollars does the fuel "
            "for the trip cost?")


def _trip_answer(v: Values) -> Fraction:
    return F(v["miles"]) * F("1.609344") * F(v["consumption"]) / 100 * F(v["price"])


def _trip_steps(v: Values) -> Steps:
    return [
        (f"First the distance in km: {show(v['miles'])} miles times 1.609344.",
         f"km = {v['miles']} * 1.609344\nprint(km)"),
        (f"That is {{obs}} km. At {v['consumption']} litres per 100 km and ${v['price']} per litre:",
         f"litres = km * {v['consumption']} / 100\ncost = litres * {v['price']}\nprint(cost)"),
        ("The fuel costs {obs} dollars.", "final_answer(cost)"),
    ]


# payroll ----------------------------------------------------------------------------------
def _payroll_sample(rng: random.Random) -> Values:
    workers = rng.randint(300, 3000)
    return {"workers": str(workers), "wage": decimal(rng, 15, 45, 2), "hours": decimal(rng, 30, 45, 1, strip=True),
            "ot_workers": integer(rng, 20, workers // 3), "ot_hours": decimal(rng, 1, 12, 1, strip=True)}


def _payroll_question(v: Values) -> str:
    return (f"A factory employs {show(v['workers'])} workers at ${v['wage']} an hour for {v['hours']} hours a week. "
            f"This week {show(v['ot_workers'])} of them also worked {v['ot_hours']} hours of overtime each, paid at "
            "1.5 times the hourly rate. What is this week's total payroll in dollars?")


def _payroll_answer(v: Values) -> Fraction:
    wage = F(v["wage"])
    return F(v["workers"]) * wage * F(v["hours"]) + F(v["ot_workers"]) * F(v["ot_hours"]) * wage * F("1.5")


def _payroll_steps(v: Values) -> Steps:
    return [
        (f"Regular pay: {show(v['workers'])} workers times ${v['wage']} times {v['hours']} hours.",
         f"base = {v['workers']} * {v['wage']} * {v['hours']}\nprint(base)"),
        (f"Regular pay is {{obs}} dollars. Now the overtime of {show(v['ot_workers'])} workers at 1.5 times the rate.",
         f"overtime = {v['ot_workers']} * {v['ot_hours']} * {v['wage']} * 1.5\npayroll = base + overtime\nprint(payroll)"),
        ("The total payroll is {obs} dollars.", "final_answer(payroll)"),
    ]


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template("inventory", _inventory_sample, _inventory_question, _inventory_answer, _inventory_steps),
        Template("travel", _travel_sample, _travel_question, _travel_answer, _travel_steps),
        Template("compound_interest", _interest_sample, _interest_question, _interest_answer, _interest_steps),
        Template("fuel_delivery", _delivery_sample, _delivery_question, _delivery_answer, _delivery_steps),
        Template("bill_split", _bill_sample, _bill_question, _bill_answer, _bill_steps),
        Template("trip_fuel", _trip_sample, _trip_question, _trip_answer, _trip_steps),
        Template("payroll", _payroll_sample, _payroll_question, _payroll_answer, _payroll_steps),
    ]
}
