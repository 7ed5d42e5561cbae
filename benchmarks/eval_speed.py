"""Throughput of the evaluation engine against a one-item-at-a-time `generate` loop, in one run.

On the same model and the same items:
  * one at a time: `model.generate` per item (how published multimodal unlearning benchmarks evaluate),
  * batched: `generate_answers` (left padding, KV cache, `--batch-size` items per call),
  * multiple choice by likelihood: `score_options` (all options of a batch of questions in one pass).
Prints seconds per item and the speed-up ratios (issue 4 targets: at least 23x batched, 60x likelihood).

    python benchmarks/eval_speed.py --model runs/demo/models/vanilla --bench runs/demo/bench [--items 64]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

from medforget.data.collate import pad_token_id  # noqa: E402
from medforget.data.formatting import format_example  # noqa: E402
from medforget.evaluate.engine import ImageCache, generate_answers, score_options  # noqa: E402
from medforget.models.loading import load_model  # noqa: E402
from medforget.world import load_benchmark  # noqa: E402


@torch.no_grad()
def one_at_a_time(model, processor, rows, images, max_new_tokens: int) -> float:
    pad = pad_token_id(processor)
    began = time.perf_counter()
    for row in rows:
        ex = format_example(processor, row, images(row), prompt_only=True)
        inputs = {k: v.unsqueeze(0).to(model.device) for k, v in ex.tokens.items()} | {k: v.to(model.device) for k, v in ex.vision.items()}
        model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                       eos_token_id=processor.tokenizer.eos_token_id)
    return (time.perf_counter() - began) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()
    bench = load_benchmark(args.bench)
    model, processor = load_model(args.model)
    model.eval()
    images = ImageCache(bench)
    rows = bench["test_retain"].to_list()
    gen_rows = [r for r in rows if r["task"] != "mcq"][: args.items]
    mcq_rows = [r for r in rows if r["task"] == "mcq"][: args.items]
    for r in gen_rows[:2] + mcq_rows[:2]:  # warm-up: first calls allocate
        images(r)
    generate_answers(model, processor, gen_rows[:4], images, batch_size=4, max_new_tokens=4)

    single_gen = one_at_a_time(model, processor, gen_rows, images, args.max_new_tokens)
    single_mcq = one_at_a_time(model, processor, mcq_rows, images, args.max_new_tokens)
    began = time.perf_counter()
    generate_answers(model, processor, gen_rows, images, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    batched = (time.perf_counter() - began) / len(gen_rows)
    began = time.perf_counter()
    score_options(model, processor, mcq_rows, images, batch_size=args.batch_size * 4)
    likelihood = (time.perf_counter() - began) / len(mcq_rows)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    print(f"device: {device}; model: {args.model}; {len(gen_rows)} open/cloze and {len(mcq_rows)} MCQ items")
    print(f"{'mode':<40} {'s/item':>8} {'speed-up':>9}")
    print(f"{'one at a time, generate (open/cloze)':<40} {single_gen:>8.4f} {1.0:>8.1f}x")
    print(f"{'batched generate, batch ' + str(args.batch_size):<40} {batched:>8.4f} {single_gen / batched:>8.1f}x")
    print(f"{'one at a time, generate (MCQ)':<40} {single_mcq:>8.4f} {1.0:>8.1f}x")
    print(f"{'MCQ by option likelihood':<40} {likelihood:>8.4f} {single_mcq / likelihood:>8.1f}x")


if __name__ == "__main__":
    main()
