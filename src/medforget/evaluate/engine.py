"""Batched scoring: option likelihoods for multiple choice, greedy generation for open and cloze items.

Multiple choice never generates: every option of a batch of questions is scored by the log-likelihood of
the same target the model was trained on (the option's text), raw and per token. Where the model takes
plain position ids (LLaVA, Idefics3), a question's prompt (images, stem and listed options: most of its
tokens) runs once and each option continues from the cached prompt; other families run every (question,
option) pair in full. Generation is batched with left padding and the KV cache.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import PreTrainedModel, ProcessorMixin

from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import (
    IGNORE_INDEX, Example, FormattingError, answer_token_ids, end_of_turn_ids, format_example, shared_prompt_answer_ids,
)
from medforget.evaluate.metrics.mia import token_stats_from_logits
from medforget.models.loss import answer_logits, answer_token_counts, answer_token_loss, output_logits
from medforget.world.storage import ImageCache

Progress = Callable[[int], None]
SHARED_PROMPT_FAMILIES = ("llava", "idefics3")  # language models on plain 1-D positions (no M-RoPE)


@dataclass
class OptionScores:
    raw: list[float]  # summed log-likelihood of each option's answer tokens
    normalised: list[float]  # the same per answer token

    @property
    def predicted(self) -> int:
        return max(range(len(self.normalised)), key=self.normalised.__getitem__)


def _device(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


def _base(model: PreTrainedModel | PeftModel) -> PreTrainedModel:
    return model.get_base_model() if isinstance(model, PeftModel) else model


def _option_row(row: dict, k: int) -> dict:
    return dict(row, answer=row["options"][k], correct_index=k)


@torch.no_grad()
def score_options(
    model: PreTrainedModel, processor: ProcessorMixin, rows: Sequence[dict], images: ImageCache,
    batch_size: int = 64, progress: Progress | None = None,
) -> list[OptionScores]:
    """Log-likelihood of every option of every MCQ row; `batch_size` counts (row, option) pairs."""
    if not rows:
        return []
    score = _score_shared if _shares_prompts(model, processor, rows[0], images) else _score_pairs
    return score(model, processor, rows, images, batch_size, progress)


def _shares_prompts(model: PreTrainedModel, processor: ProcessorMixin, row: dict, images: ImageCache) -> bool:
    """The shared-prompt path applies: a known family, and the text-only answer tokens equal the labels of
    a fully formatted example (checked on the first option of the call)."""
    if getattr(_base(model).config, "model_type", None) not in SHARED_PROMPT_FAMILIES:
        return False
    labels = format_example(processor, _option_row(row, 0), images(row)).tokens["labels"]
    return answer_token_ids(processor, _option_row(row, 0), len(row["scan_ids"])) == labels[labels != IGNORE_INDEX].tolist()


def _score_pairs(model, processor, rows, images, batch_size, progress) -> list[OptionScores]:
    """Every (row, option) pair formatted and run in full."""
    pad, device = pad_token_id(processor), _device(model)
    pairs: list[tuple[int, Example]] = []
    for i, row in enumerate(rows):
        imgs = images(row)
        for k in range(len(row["options"])):
            pairs.append((i, format_example(processor, _option_row(row, k), imgs)))
    raw: list[list[float]] = [[] for _ in rows]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate([e for _, e in chunk], pad_token_id=pad).items()}
        nll = answer_token_loss(model, batch, reduction="sum_per_sample").float().cpu()
        counts = answer_token_counts(batch).cpu()
        for (i, _), s, n in zip(chunk, nll.tolist(), counts.tolist()):
            raw[i].append((-s, n))
        if progress:
            progress(len({i for i, _ in chunk}))
    return [_option_scores([s for s, _ in r], [n for _, n in r]) for r in raw]


def _option_scores(logps: list[float], counts: list[int]) -> OptionScores:
    """Raw option log-likelihoods and the same per answer token."""
    return OptionScores(logps, [s / max(n, 1) for s, n in zip(logps, counts)])


def _score_shared(model, processor, rows, images, batch_size, progress) -> list[OptionScores]:
    """Each chunk of rows (at most `batch_size` options) runs its prompts once, right-padded, with the KV
    cache; the cache is repeated once per option and the options run on it at their true positions."""
    pad, device, vlm = pad_token_id(processor), _device(model), _base(model)
    chunks: list[list[dict]] = [[]]
    size = 0
    for row in rows:
        if chunks[-1] and size + len(row["options"]) > batch_size:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += len(row["options"])
    out: list[OptionScores] = []
    for chunk in chunks:
        out += _prompt_then_options(vlm, processor, chunk, images, pad, device)
        if progress:
            progress(len(chunk))
    return out


def _prompt_then_options(vlm, processor, rows, images, pad: int, device: torch.device) -> list[OptionScores]:
    prompts = [format_example(processor, row, images(row), prompt_only=True) for row in rows]
    answers = [ids for row in rows for ids in shared_prompt_answer_ids(
        processor, [_option_row(row, k) for k in range(len(row["options"]))], len(row["scan_ids"]))]
    owner = torch.tensor([i for i, row in enumerate(rows) for _ in row["options"]], device=device)
    batch = {k: v.to(device) for k, v in collate(prompts, pad_token_id=pad, padding_side="right").items()}
    # transformers 5.24 renamed `past_key_values` to `cache` (the old name warns until 5.40)
    cache_arg = "cache" if "cache" in inspect.signature(vlm.base_model.forward).parameters else "past_key_values"
    prompt = vlm.base_model(**batch, use_cache=True)
    lengths = batch["attention_mask"].sum(1)
    width = max(len(a) for a in answers)
    ids = torch.full((len(answers), width), pad, device=device)
    mask = torch.zeros_like(ids)
    for j, a in enumerate(answers):
        ids[j, :len(a)] = torch.tensor(a)
        mask[j, :len(a)] = 1
    cache = getattr(prompt, cache_arg)
    cache.reorder_cache(owner)
    options = vlm.base_model(
        input_ids=ids, attention_mask=torch.cat([batch["attention_mask"][owner], mask], 1),
        position_ids=lengths[owner, None] + torch.arange(width, device=device), use_cache=True, **{cache_arg: cache},
    ).last_hidden_state
    last = prompt.last_hidden_state[owner, lengths[owner] - 1]  # predicts each option's first token
    hidden = torch.cat([last[:, None], options[:, :-1]], 1)  # position j predicts answer token j
    keep = mask.bool()
    nll = F.cross_entropy(output_logits(vlm, hidden[keep]), ids[keep], reduction="none")
    sums = nll.new_zeros(len(answers)).index_add(0, keep.nonzero(as_tuple=True)[0], nll).cpu().tolist()
    counts = mask.sum(1).cpu().tolist()
    scores, j = [], 0
    for row in rows:
        k = len(row["options"])
        scores.append(_option_scores([-s for s in sums[j:j + k]], counts[j:j + k]))
        j += k
    return scores


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
    under the model's own next-token distribution (Min-K%++ needs both), in batched forward passes.
    Only the answer's own tokens count: the end-of-turn token the template appends follows every answer
    alike, so it would only dilute the attacks' scores."""
    pad, device = pad_token_id(processor), _device(model)
    out: list[AnswerTokens] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        batch = collate([format_example(processor, r, images(r)) for r in chunk], pad_token_id=pad)
        logits, sample, _, targets = answer_logits(model, {k: v.to(device) for k, v in batch.items()})
        stats = token_stats_from_logits(logits, targets)
        sample, targets = sample.cpu(), targets.cpu()
        for i, row in enumerate(chunk):
            sel = sample == i
            labelled, closing = targets[sel].tolist(), end_of_turn_ids(processor, row, len(row["scan_ids"]))
            own = len(labelled) - len(closing)
            if own < 1 or labelled[own:] != closing:
                raise FormattingError(f"row {row['id']}: the labelled tokens do not end with the template's end of turn")
            out.append(AnswerTokens(*(t.cpu()[sel][:own].tolist() for t in stats)))
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
