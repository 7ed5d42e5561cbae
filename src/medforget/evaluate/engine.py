"""Batched scoring: option likelihoods for multiple choice, greedy generation for open and cloze items.

Multiple choice never generates: every option of a batch of questions is scored in one forward pass, by
the log-likelihood of the same target the model was trained on ("B. <option>"), raw and per token.
Generation is batched with left padding and the KV cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, ProcessorMixin

from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import Example, format_example
from medforget.evaluate.metrics.mia import token_stats_from_logits
from medforget.models.loss import answer_logits, answer_token_counts, answer_token_loss
from medforget.world.storage import ImageCache

Progress = Callable[[int], None]


@dataclass
class OptionScores:
    raw: list[float]  # summed log-likelihood of each option's answer tokens
    normalised: list[float]  # the same per answer token

    @property
    def predicted(self) -> int:
        return max(range(len(self.normalised)), key=self.normalised.__getitem__)


def _device(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def score_options(
    model: PreTrainedModel, processor: ProcessorMixin, rows: Sequence[dict], images: ImageCache,
    batch_size: int = 64, progress: Progress | None = None,
) -> list[OptionScores]:
    """Log-likelihood of every option of every MCQ row; `batch_size` counts (row, option) pairs."""
    pad, device = pad_token_id(processor), _device(model)
    pairs: list[tuple[int, Example]] = []
    for i, row in enumerate(rows):
        imgs = images(row)
        for k, option in enumerate(row["options"]):
            pairs.append((i, format_example(processor, dict(row, answer=option, correct_index=k), imgs)))
    raw: list[list[float]] = [[] for _ in rows]
    norm: list[list[float]] = [[] for _ in rows]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate([e for _, e in chunk], pad_token_id=pad).items()}
        nll = answer_token_loss(model, batch, reduction="sum_per_sample").float().cpu()
        counts = answer_token_counts(batch).cpu()
        for (i, _), s, n in zip(chunk, nll.tolist(), counts.tolist()):
            raw[i].append(-s)
            norm[i].append(-s / max(n, 1))
        if progress:
            progress(len({i for i, _ in chunk}))
    return [OptionScores(r, n) for r, n in zip(raw, norm)]


@dataclass
class AnswerTokens:
    """Per-token statistics of a reference answer: what the membership attacks read."""

    logprobs: list[float]
    mu: list[float]
    sigma: list[float]


@torch.no_grad()
def answer_token_stats(
    model: PreTrainedModel, processor: ProcessorMixin, rows: Sequence[dict], images: ImageCache,
    batch_size: int = 64, progress: Progress | None = None,
) -> list[AnswerTokens]:
    """Log-probability of each token of each row's reference answer, with the mean and spread of log p
    under the model's own next-token distribution (Min-K%++ needs both), in batched forward passes."""
    pad, device = pad_token_id(processor), _device(model)
    out: list[AnswerTokens] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        batch = collate([format_example(processor, r, images(r)) for r in chunk], pad_token_id=pad)
        logits, sample, _, targets = answer_logits(model, {k: v.to(device) for k, v in batch.items()})
        stats = token_stats_from_logits(logits, targets)
        sample = sample.cpu()
        for i in range(len(chunk)):
            sel = sample == i
            out.append(AnswerTokens(*(t.cpu()[sel].tolist() for t in stats)))
        if progress:
            progress(len(chunk))
    return out


@torch.no_grad()
def generate_answers(
    model: PreTrainedModel, processor: ProcessorMixin, rows: Sequence[dict], images: ImageCache,
    batch_size: int = 64, max_new_tokens: int = 24, progress: Progress | None = None,
) -> list[str]:
    """Greedy answers, batched with left padding; rows are grouped by prompt length to waste little padding."""
    pad, device = pad_token_id(processor), _device(model)
    examples = [format_example(processor, row, images(row), prompt_only=True) for row in rows]
    order = sorted(range(len(rows)), key=lambda i: examples[i].length)
    out: list[str] = [""] * len(rows)
    tokenizer = processor.tokenizer
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx], pad_token_id=pad, padding_side="left").items()}
        generated = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = generated[:, batch["input_ids"].shape[1]:]
        for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
            out[i] = text.strip()
        if progress:
            progress(len(idx))
    return out
