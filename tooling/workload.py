"""Request mixes built from the real data sets, for the demo and the end-to-end checks.

A mix holds first-time questions (routing books), exact repeats, paraphrases (Quora pairs
labelled duplicate: `a` asked first, `b` later), and questions that share a long system
prompt (a RAG-style document).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from costmesh.tooling.datasets import data_dir, load_book, load_pairs

RAG_DOCUMENT = (
    "You are the support assistant of Northwind Cloud. Answer from the handbook below; say so when it does "
    "not cover the question.\n\nHANDBOOK\n"
    + "\n".join(
        f"Section {i}: Northwind Cloud plan {i} includes {i * 10} GB of storage, {i * 2} build minutes per day, "
        f"support response within {48 // (1 + i % 4)} hours, and data residency in region {chr(65 + i % 26)}. "
        f"Upgrades take effect at once; downgrades at the end of the billing period."
        for i in range(1, 80)
    )
)

RAG_QUESTIONS = [
    "How much storage does plan 12 include?",
    "When does a downgrade take effect?",
    "Which region keeps the data of plan 7?",
    "How fast is support on plan 3?",
    "How many build minutes per day does plan 20 have?",
    "Can I upgrade in the middle of a billing period?",
]


@dataclass(frozen=True)
class DemoRequest:
    kind: str            # "new", "repeat", "paraphrase", "rag"
    prompt: str
    system: str = ""


def demo_mix(total: int = 300, seed: int = 7) -> list[DemoRequest]:
    rng = random.Random(seed)
    data = data_dir()
    books = load_book(data / "mmlu_routing_dev.jsonl.gz", limit=2000) + load_book(
        data / "gsm8k_routing_dev.jsonl.gz", limit=400
    )
    pairs = [p for p in load_pairs(data / "qqp_pairs_dev.jsonl.gz", limit=4000) if p.duplicate]
    rng.shuffle(books)
    rng.shuffle(pairs)

    n_paraphrase = total // 6
    n_rag = total // 10
    n_repeat = total // 5
    n_new = total - 2 * n_paraphrase - n_rag - n_repeat
    firsts = [DemoRequest("new", r.prompt) for r in books[:n_new]]
    askers = [DemoRequest("new", p.a) for p in pairs[:n_paraphrase]]
    paraphrases = [DemoRequest("paraphrase", p.b) for p in pairs[:n_paraphrase]]
    rag = [DemoRequest("rag", rng.choice(RAG_QUESTIONS), RAG_DOCUMENT) for _ in range(n_rag)]

    head = firsts + askers
    rng.shuffle(head)
    repeats = [DemoRequest("repeat", r.prompt, r.system) for r in rng.sample(head, min(n_repeat, len(head)))]
    tail = paraphrases + repeats + rag
    rng.shuffle(tail)
    return head + tail
