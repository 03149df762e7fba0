"""Assistant-style trap pairs and genuine paraphrases, generated from templates.

A trap changes what the answer must be while keeping almost every word: a negation ("Please
cancel ..." / "Please don't cancel ..."), a swapped entity (Netflix / Spotify), a changed
number, date or time, a changed scope ("this order" / "all my orders"), an opposite word
(increase / decrease), or two slots swapped ("from Paris to London" / "from London to Paris").
A paraphrase keeps the meaning: another phrasing of the request and synonyms ([a|b] groups).

Frames are split by index into train / calibration / test, so the held-out splits are made of
requests the verifier never saw. `write_pairs` writes them in the pairs format
(`../shared/data/README.md`), with the trap kind in an extra `kind` field.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

POOLS: dict[str, tuple[str, tuple[str, ...]]] = {  # slot -> (trap kind, values)
    "service": ("entity", ("Netflix", "Spotify", "Hulu", "Amazon Prime", "YouTube Premium", "Audible")),
    "person": ("entity", ("Alice", "Bob", "Maria", "John", "Priya", "Chen", "Fatima", "Lucas")),
    "person2": ("entity", ("Alice", "Bob", "Maria", "John", "Priya", "Chen", "Fatima", "Lucas")),
    "city": ("entity", ("Paris", "London", "Berlin", "Tokyo", "Madrid", "Chicago", "Boston", "Rome")),
    "city2": ("entity", ("Paris", "London", "Berlin", "Tokyo", "Madrid", "Chicago", "Boston", "Rome")),
    "cur": ("entity", ("USD", "EUR", "GBP", "JPY", "CHF")),
    "cur2": ("entity", ("USD", "EUR", "GBP", "JPY", "CHF")),
    "app": ("entity", ("Gmail", "Outlook", "Slack", "Zoom", "Teams", "Dropbox", "Notion")),
    "lang": ("entity", ("Python", "Java", "Rust", "Go", "JavaScript", "C++", "Ruby")),
    "language": ("entity", ("French", "German", "Spanish", "Japanese", "Italian", "Korean")),
    "tier": ("entity", ("Basic", "Pro", "Business", "Enterprise", "Premium")),
    "restaurant": ("entity", ("Luigi's", "Nobu", "Chez Marie", "The Ivy", "Olive Garden")),
    "utility": ("entity", ("electricity", "water", "gas", "phone", "internet")),
    "item": ("entity", ("pizzas", "coffees", "tickets", "sandwiches", "bouquets")),
    "col": ("entity", ("date", "price", "name", "rating", "size")),
    "doc": ("entity", ("passport", "driver's license", "visa", "ID card", "lease")),
    "n": ("number", ("2", "3", "4", "5", "6", "8", "10", "12")),
    "amount": ("number", ("50", "100", "200", "250", "500", "1000", "1500")),
    "pct": ("number", ("5", "10", "15", "20", "25", "30")),
    "orderno": ("number", ("48213", "48231", "51002", "51020", "77310")),
    "year": ("number", ("2021", "2022", "2023", "2024", "2025")),
    "q": ("number", ("1", "2", "3", "4")),
    "time": ("number", ("7 am", "8 am", "6:30 am", "9 pm", "10 pm", "noon")),
    "day": ("date", ("Monday", "Tuesday", "Wednesday", "Friday", "Saturday", "Sunday", "tomorrow", "today")),
    "date": ("date", ("March 3", "March 4", "April 1", "May 15", "June 30", "the end of the month")),
    "month": ("date", ("January", "March", "June", "September", "December")),
    "when": ("date", ("tomorrow morning", "tonight", "next Monday", "this weekend", "next month")),
    "scope": ("scope", ("all my", "this", "my unread", "every", "the team's", "only my")),
    "scope_account": ("scope", ("my", "my manager's", "every user's", "the admin", "our shared")),
    "scope_order": ("scope", ("my last order", "all my orders", "this order", "my first order", "every order")),
    "scope_device": ("scope", ("my", "all company", "this", "every team's", "the shared")),
    "dir": ("opposite", ("increase", "decrease")),
    "order_dir": ("opposite", ("ascending", "descending")),
    "onoff": ("opposite", ("turn on", "turn off")),
}

ACTION = ("Please {vp}.", "Can you {vp}?", "Could you {vp} for me?", "I'd like you to {vp}.",
          "I need you to {vp}.", "Would you {vp}, please?", "Go ahead and {vp}.")
ACTION_NEG = ("Please don't {vp}.", "Do not {vp}.", "I don't want you to {vp}.", "Please never {vp}.",
              "Don't {vp}, please.", "Could you not {vp}?")
HOWTO = ("How do I {vp}?", "How can I {vp}?", "What's the way to {vp}?", "Show me how to {vp}.",
         "What are the steps to {vp}?", "Tell me how to {vp}.", "Explain how to {vp}.")
CONSEQUENCE = ("What happens if I {vp}?", "What happens when I {vp}?", "What will happen if I {vp}?",
               "What are the consequences if I {vp}?")
CONSEQUENCE_NEG = ("What happens if I don't {vp}?", "What happens if I do not {vp}?",
                   "What will happen if I never {vp}?", "What are the consequences if I don't {vp}?")
FAMILIES = {"action": (ACTION, ACTION_NEG), "howto": (HOWTO, ()), "consequence": (CONSEQUENCE, CONSEQUENCE_NEG)}


@dataclass(frozen=True)
class Frame:
    vp: str                     # verb phrase with {slots} and [synonym|groups]
    families: tuple[str, ...]
    swaps: tuple[tuple[str, str], ...] = ()


FRAMES: tuple[Frame, ...] = (
    Frame("[cancel|end|terminate] my {service} subscription", ("action", "howto", "consequence")),
    Frame("book a table for {n} people at {restaurant} on {day}", ("action",)),
    Frame("set an alarm for {time} on {day}", ("action", "howto")),
    Frame("[send|transfer] {amount} dollars to {person}", ("action", "howto")),
    Frame("convert {amount} {cur} to {cur2}", ("action", "howto"), (("cur", "cur2"),)),
    Frame("[get|find] directions from {city} to {city2}", ("action",), (("city", "city2"),)),
    Frame("[delete|remove] {scope} emails from {person}", ("action", "howto", "consequence")),
    Frame("[reset|change] the password of {scope_account} account", ("action", "howto")),
    Frame("[reverse|invert the order of] a list in {lang}", ("howto",)),
    Frame("[read|load|parse] a CSV file in {lang}", ("howto",)),
    Frame("[export|download] my contacts from {app}", ("action", "howto")),
    Frame("[schedule|set up|arrange] a meeting with {person} on {day} at {time}", ("action", "howto")),
    Frame("{onoff} two-factor authentication for {scope_account} account", ("action", "howto")),
    Frame("{dir} the font size in {app}", ("action", "howto")),
    Frame("[upgrade|switch|move] my plan to the {tier} tier", ("action", "howto", "consequence")),
    Frame("[refund|reimburse] {scope_order}", ("action", "howto")),
    Frame("[translate|render] this paragraph into {language}", ("action", "howto")),
    Frame("[share|send] {scope} files with {person}", ("action", "howto", "consequence")),
    Frame("[archive|hide] {scope} messages in {app}", ("action", "howto")),
    Frame("[pay|settle] my {utility} bill before {date}", ("action", "howto", "consequence")),
    Frame("[renew|extend] my {doc} before it expires in {month}", ("action", "howto", "consequence")),
    Frame("[order|buy|get] {n} {item} for the office", ("action",)),
    Frame("[calculate|compute|work out] {pct} percent of {amount}", ("action", "howto")),
    Frame("[add|log|record] {n} hours to my timesheet for {day}", ("action", "howto")),
    Frame("[move|reschedule] my appointment with Dr. {person} to {day}", ("action", "howto")),
    Frame("[show|print|pull up] the sales report for Q{q} {year}", ("action", "howto")),
    Frame("[find|look for|search for] hotels in {city} under {amount} dollars a night", ("action",)),
    Frame("[sort|order] the table by {col} in {order_dir} order", ("action", "howto")),
    Frame("[check|track|look up] the status of order number {orderno}", ("action", "howto")),
    Frame("[mute|silence] notifications from {app} until {time}", ("action", "howto")),
    Frame("[install|set up|deploy] {app} on {scope_device} computers", ("action", "howto")),
    Frame("give {person} [access|permission] to {scope} folders", ("action", "howto", "consequence")),
    Frame("[split|divide] a bill of {amount} dollars between {n} people", ("action", "howto")),
    Frame("[remind|alert] me to call {person} {when}", ("action",)),
    Frame("[forward|send] {scope} invoices to {person}", ("action", "howto", "consequence")),
    Frame("[book|reserve] a flight from {city} to {city2} on {date}", ("action", "howto"), (("city", "city2"),)),
    Frame("[close|shut down|deactivate] {scope_account} account", ("action", "howto", "consequence")),
    Frame("[unsubscribe|opt out] from {service} emails", ("action", "howto", "consequence")),
    Frame("[copy|duplicate] {scope} slides into a new deck", ("action", "howto")),
    Frame("[print|list] the first {n} rows of the {col} column", ("action", "howto")),
)
SPLITS = {"train": (0, 1), "calibration": (2,), "test": (3,)}
_SLOT = re.compile(r"\{(\w+)\}")
_GROUP = re.compile(r"\[([^\]]+)\]")


def _slots(frame: Frame) -> list[str]:
    return _SLOT.findall(frame.vp)


def _render(frame: Frame, values: dict[str, str], rng: random.Random, wrapper: str) -> str:
    vp = _GROUP.sub(lambda m: rng.choice(m.group(1).split("|")), frame.vp)
    vp = _SLOT.sub(lambda m: values[m.group(1)], vp)
    text = wrapper.format(vp=vp)
    return text[0].upper() + text[1:]


def _draw(frame: Frame, rng: random.Random) -> dict[str, str]:
    values: dict[str, str] = {}
    for slot in _slots(frame):
        choices = [v for v in POOLS[slot][1] if v not in values.values()]
        values[slot] = rng.choice(choices)
    return values


def frame_pairs(frame: Frame, rng: random.Random, paraphrases: int, traps: int) -> list[dict]:
    out = []
    for _ in range(paraphrases):
        family = rng.choice(frame.families)
        positive, negative = FAMILIES[family]
        wrappers = negative if negative and rng.random() < 0.2 else positive
        wa, wb = rng.sample(wrappers, 2)
        values = _draw(frame, rng)
        out.append({"a": _render(frame, values, rng, wa), "b": _render(frame, values, rng, wb),
                    "duplicate": True, "kind": "paraphrase"})
    kinds = sorted({POOLS[s][0] for s in _slots(frame)} | ({"swap"} if frame.swaps else set())
                   | ({"negation"} if any(FAMILIES[f][1] for f in frame.families) else set()))
    for i in range(traps):
        kind = kinds[i % len(kinds)]
        family = rng.choice([f for f in frame.families if kind != "negation" or FAMILIES[f][1]])
        positive, negative = FAMILIES[family]
        values = _draw(frame, rng)
        changed = dict(values)
        wa = rng.choice(positive)
        wb = wa if rng.random() < 0.5 else rng.choice(positive)
        if kind == "negation":
            wb = rng.choice(negative)
        elif kind == "swap":
            x, y = rng.choice(frame.swaps)
            changed[x], changed[y] = values[y], values[x]
        else:
            slot = rng.choice([s for s in _slots(frame) if POOLS[s][0] == kind])
            changed[slot] = rng.choice([v for v in POOLS[slot][1] if v not in values.values()])
        a, b = _render(frame, values, rng, wa), _render(frame, changed, rng, wb)
        if rng.random() < 0.5:
            a, b = b, a
        out.append({"a": a, "b": b, "duplicate": False, "kind": kind})
    return out


def generate(split: str, seed: int = 7, paraphrases: int = 24, traps: int = 24) -> list[dict]:
    """Pairs of the frames in `split` ("train", "calibration" or "test")."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}")
    out = []
    for index, frame in enumerate(FRAMES):
        if index % 4 in SPLITS[split]:
            rng = random.Random(f"{seed}:{index}")
            out.extend(dict(p, frame=index) for p in frame_pairs(frame, rng, paraphrases, traps))
    return out


def write_pairs(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
