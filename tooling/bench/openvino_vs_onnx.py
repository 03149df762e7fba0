"""OpenVINO against ONNX Runtime on the embedder and the cross-encoder, interleaved in one process.

    python -m costmesh.tooling.bench.openvino_vs_onnx [--prompts 200] [--rounds 5] [--max-chars N] [--output FILE]

Both engines run the same cached ONNX export (`costmesh.onnx_models`), fp32, one thread each
(ONNX Runtime exactly as costmesh builds its sessions; OpenVINO with a latency hint, one stream,
one inference thread, f32 precision forced: on a CPU with bf16 support OpenVINO's default is bf16).
Each round runs every engine on the same prompts, alternating the order, for: the embedder one
text a call and 32 texts a call (costmesh's `Embedder.encode`, passes of like length), the
cross-encoder one pair a call and 32 pairs a call. Reported per case: texts/s (wall) and CPU ms a
text (the whole process's CPU, so engine threads count), medians over the rounds, and the median
of the per-round ratios (ONNX Runtime's CPU / OpenVINO's: above 1, OpenVINO is cheaper). Paired
ratios hold up on a machine that others are using; absolute numbers do not. Needs `pip install openvino`
(not in any extra: it was measured, not adopted; see the README, Benchmarks).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SETTLE_S = 0.05  # counted in each case's CPU (an engine's threads spinning after a call) but not its wall time


def _measure(run: Callable[[], Any], items: int) -> tuple[float, float]:
    """(items per second of wall time, CPU ms per item over the whole process)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run()
    wall = time.perf_counter() - wall0
    time.sleep(SETTLE_S)
    cpu = time.process_time() - cpu0
    return items / wall, cpu * 1000.0 / items


def _in_batches(call: Callable[[list], Any], items: list, size: int) -> Callable[[], None]:
    def run() -> None:
        for start in range(0, len(items), size):
            call(items[start:start + size])
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, help="prompts: a routing book (default: the MMLU dev book)")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-chars", type=int, default=0, help="cut each prompt to this many characters (0: whole)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here too")
    args = parser.parse_args(argv)

    from costmesh.embeddings import Embedder
    from costmesh.model_files import default_model_path
    from costmesh.onnx_models import OnnxSentenceModel, session
    from costmesh.tooling.datasets import data_dir, load_book
    from costmesh.verification.artifact import DEFAULT_ARTIFACT, VerifierArtifact
    from costmesh.verification.cross_encoder import OnnxCrossEncoder

    book = args.book or data_dir() / "mmlu_routing_dev.jsonl.gz"
    texts = [record.prompt[:args.max_chars or None] for record in load_book(book, limit=args.prompts)]
    pairs = [(texts[i], texts[(i + 1) % len(texts)]) for i in range(len(texts))]
    adapter = VerifierArtifact.load(DEFAULT_ARTIFACT).cross_encoder
    if adapter is None:
        raise SystemExit("the packaged verifier has no cross-encoder")

    sentence = OnnxSentenceModel(default_model_path(), threads=1)
    cross = OnnxCrossEncoder(adapter, threads=1)
    paths = {"sentence": _session_path(sentence.session), "cross": _session_path(cross.session)}
    sessions = {
        "onnxruntime": {"sentence": session(paths["sentence"], 1), "cross": session(paths["cross"], 1)},
        "openvino": {"sentence": _openvino(paths["sentence"]), "cross": _openvino(paths["cross"])},
    }
    embedder = Embedder(model=sentence, warmup=False, batching=False)

    def use(engine: str) -> None:
        sentence.session, cross.session = sessions[engine]["sentence"], sessions[engine]["cross"]

    # the same outputs: embeddings (cosine) and logits (absolute difference) against ONNX Runtime
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for engine in sessions:
        use(engine)
        outputs[engine] = (np.array(embedder.encode(texts)), cross.logits(pairs))
    (ref_vec, ref_log), (ov_vec, ov_log) = outputs["onnxruntime"], outputs["openvino"]
    checks = {"embedding_cosine_min": float((ref_vec * ov_vec).sum(1).min()),
              "cross_logit_max_abs_diff": float(np.abs(ref_log - ov_log).max())}
    alone = {}
    for engine in sessions:  # one text a call: other shapes
        use(engine)
        alone[engine] = [np.array(embedder.encode([t]))[0] for t in texts[:20]]
    checks["embedding_cosine_min_batch1"] = float(min(a @ b for a, b in zip(*alone.values())))

    cases: dict[str, Callable[[], None]] = {
        "embed_b1": _in_batches(embedder.encode, texts, 1),
        "embed_b32": _in_batches(embedder.encode, texts, 32),
        "cross_b1": _in_batches(cross.logits, pairs, 1),
        "cross_b32": _in_batches(cross.logits, pairs, 32),
    }
    for engine in sessions:  # warm up: first passes of each shape
        use(engine)
        for run in cases.values():
            run()
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {c: {e: [] for e in sessions} for c in cases}
    for round_ in range(args.rounds):
        order = list(sessions) if round_ % 2 == 0 else list(reversed(list(sessions)))
        for case, run in cases.items():
            for engine in order:
                use(engine)
                samples[case][engine].append(_measure(run, len(texts)))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    ids = sentence.tokenizer(texts, truncation=True, max_length=sentence.max_seq_length)["input_ids"]
    results: dict[str, Any] = {"prompts": len(texts), "mean_tokens": round(float(np.mean([len(r) for r in ids])), 1),
                               "rounds": args.rounds, "checks": checks, "cases": {}}
    for case, by_engine in samples.items():
        row: dict[str, Any] = {}
        for engine, values in by_engine.items():
            row[engine] = {"per_s": round(statistics.median(v[0] for v in values), 1),
                           "cpu_ms_per_item": round(statistics.median(v[1] for v in values), 3)}
        ort, ov = by_engine["onnxruntime"], by_engine["openvino"]
        row["cpu_ratio_ort_over_ov"] = round(statistics.median(a[1] / b[1] for a, b in zip(ort, ov)), 3)
        row["rate_ratio_ov_over_ort"] = round(statistics.median(b[0] / a[0] for a, b in zip(ort, ov)), 3)
        row["cpu_ratio_rounds"] = [round(a[1] / b[1], 3) for a, b in zip(ort, ov)]
        results["cases"][case] = row
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


def _session_path(ort_session: Any) -> Path:
    return Path(ort_session._model_path)  # the cached export the ONNX Runtime session was built from


def _openvino(path: Path) -> Any:
    """An object with ONNX Runtime's `run(output_names, feeds)` over an OpenVINO compiled model."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1",
        "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": "NO", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"})
    request = compiled.create_infer_request()

    class Session:
        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            request.infer(feeds)
            return [request.get_tensor(name).data.copy() for name in names]

    return Session()


if __name__ == "__main__":
    raise SystemExit(main())
