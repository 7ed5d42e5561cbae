"""Training throughput and MFU of a ~2B LLaVA-class model: full-vocabulary loss against answer-token loss.

A LLaVA-1.5-style model (CLIP ViT-L/14 at 336 px, 2-layer MLP projector, a 2048-wide Llama decoder)
is built from a config with random weights, in bf16 with SDPA attention, and trained with fused AdamW
on synthetic rows shaped like medforget's: BOS, 576 image tokens, 127 text tokens (704 in all), the
last 32 of them the answer (labels only there). In the same run, for each batch size:
  * plain:     ``model(**batch).loss`` (transformers projects all 704 positions onto the vocabulary),
  * medforget: ``medforget.models.loss.answer_token_loss`` (decoder once, ``lm_head`` at answer positions).
Prints samples/s, decoder tokens/s, achieved TFLOP/s, MFU and peak memory per cell ("OOM" where a cell
does not fit).

Model FLOPs per step (6 x params x tokens for forward + backward, plus attention scores, PaLM-style):
    6 * B * (S * N_decoder + A * N_lm_head + P * N_vision + I * N_projector)
    + 12 * B * (L_text * H_text * S^2 + L_vision * H_vision * P^2)
with B the batch, S = 704 decoder positions, A = 32 answer positions, P = 577 vision positions per
image (576 patches + CLS), I = 576 projected image tokens; N_decoder counts the decoder layers and final
norm but not the input embedding (a lookup, not a matmul). Both modes are credited the same FLOPs:
``lm_head`` is counted only at the answer positions, the only logits the loss needs, so the plain
mode's full-vocabulary logits at the other positions count as overhead, not as useful work. Causal
attention is counted in full (the usual convention). MFU = achieved FLOP/s / peak dense bf16 FLOP/s
(989 TFLOP/s for H100 SXM and H200, or ``--peak-tflops``).

Reference (issue): plain transformers with full-vocabulary logits reaches about 32 % MFU at batch
8 x 704 tokens on an H100 and runs out of memory at batch 16; the target is at least 45 % MFU and
batch 16 fitting.

    python benchmarks/train_mfu.py [--batch-sizes 8,16] [--steps 10]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from medforget.data.formatting import IGNORE_INDEX
from medforget.models.loss import answer_token_loss

PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0))  # dense bf16


@dataclass(frozen=True)
class Shape:
    vision: dict
    text: dict
    seq: int  # decoder positions per sample: BOS + image tokens + text
    answer: int  # labelled tokens at the end of each sample


FULL = Shape(
    vision=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                patch_size=14, image_size=336),
    text=dict(hidden_size=2048, num_hidden_layers=30, num_attention_heads=16, intermediate_size=5632,
              vocab_size=32000),
    seq=704, answer=32)
TINY = Shape(
    vision=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                patch_size=14, image_size=56),
    text=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=512),
    seq=48, answer=8)


def image_tokens(shape: Shape) -> int:
    return (shape.vision["image_size"] // shape.vision["patch_size"]) ** 2


def build_model(shape: Shape, device: torch.device, dtype: torch.dtype) -> LlavaForConditionalGeneration:
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**shape.vision), text_config=LlamaConfig(**shape.text),
        image_token_id=shape.text["vocab_size"] - 1, image_seq_length=image_tokens(shape),
        vision_feature_select_strategy="default", vision_feature_layer=-2)
    with torch.device(device):  # random init directly on the device
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.train()


def make_batch(shape: Shape, batch: int, image_token_id: int, device: torch.device, dtype: torch.dtype) -> dict:
    n_img = image_tokens(shape)
    text = torch.randint(3, image_token_id, (batch, shape.seq - 1 - n_img))
    input_ids = torch.cat([torch.ones(batch, 1, dtype=torch.long), torch.full((batch, n_img), image_token_id), text], 1)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, -shape.answer:] = input_ids[:, -shape.answer:]
    size = shape.vision["image_size"]
    return {"input_ids": input_ids.to(device), "attention_mask": torch.ones_like(input_ids, device=device),
            "labels": labels.to(device), "pixel_values": torch.randn(batch, 3, size, size, device=device, dtype=dtype)}


def param_counts(model: LlavaForConditionalGeneration) -> dict[str, int]:
    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())
    lm = model.model.language_model
    return {"vision": count(model.model.vision_tower), "projector": count(model.model.multi_modal_projector),
            "embed": count(lm.embed_tokens), "decoder": count(lm) - count(lm.embed_tokens),
            "lm_head": count(model.lm_head), "total": count(model)}


def step_flops(model: LlavaForConditionalGeneration, counts: dict[str, int], shape: Shape, batch: int) -> float:
    """Model FLOPs of one forward + backward step (see the module docstring)."""
    vision, text = model.config.vision_config, model.config.text_config
    img = image_tokens(shape)
    linear = (shape.seq * counts["decoder"] + shape.answer * counts["lm_head"]
              + (img + 1) * counts["vision"] + img * counts["projector"])
    attention = (text.num_hidden_layers * text.hidden_size * shape.seq**2
                 + vision.num_hidden_layers * vision.hidden_size * (img + 1) ** 2)
    return batch * (6.0 * linear + 12.0 * attention)


def plain_loss(model: LlavaForConditionalGeneration, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch, use_cache=False).loss


LOSSES: dict[str, Callable] = {"plain": plain_loss, "medforget": answer_token_loss}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model, optimizer, loss_fn: Callable, batch: dict, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per optimizer step, averaged over `steps` after `warmup` untimed steps."""
    def step() -> None:
        loss_fn(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for _ in range(warmup):
        step()
    sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - began) / steps


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None or device.type != "cuda":
        return override
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS if key in name), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="8,16", help="comma-separated, e.g. 8,16")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per cell")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each cell")
    parser.add_argument("--modes", default="plain,medforget", help=f"comma-separated subset of {','.join(LOSSES)}")
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense TFLOP/s (default: by GPU name)")
    parser.add_argument("--tiny", action="store_true", help="tiny float32 model for a CPU smoke test")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shape = TINY if args.tiny else FULL
    model = build_model(shape, device, dtype)
    if args.grad_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    counts = param_counts(model)
    peak = peak_tflops(device, args.peak_tflops)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    text_params = counts["embed"] + counts["decoder"] + counts["lm_head"]
    print(f"device: {name}; peak: {f'{peak:.0f} TFLOP/s' if peak else 'n/a'}; dtype: {dtype}; "
          f"attention: {model.config._attn_implementation}; grad checkpointing: {args.grad_checkpointing}")
    print(f"params: total {counts['total']:,}, vision {counts['vision']:,}, projector {counts['projector']:,}, "
          f"text {text_params:,} (decoder {counts['decoder']:,}, embedding and lm_head {counts['lm_head']:,} each)")
    print(f"sequence: {shape.seq} tokens ({image_tokens(shape)} image, {shape.answer} answer); "
          f"{args.warmup} warm-up + {args.steps} timed steps per cell")
    print(f"{'mode':<10} {'batch':>5} {'samples/s':>10} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>6} {'peak GiB':>9}")
    for mode in args.modes.split(","):
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            batch = make_batch(shape, bs, model.config.image_token_id, device, dtype)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            try:
                seconds = measure(model, optimizer, LOSSES[mode], batch, args.warmup, args.steps, device)
            except torch.cuda.OutOfMemoryError:
                seconds = None
            del batch
            if seconds is None:  # outside the except block, so the traceback no longer pins activations
                optimizer.zero_grad(set_to_none=True)
                gc.collect()
                torch.cuda.empty_cache()
                print(f"{mode:<10} {bs:>5} {'OOM':>10}")
                continue
            tflops = step_flops(model, counts, shape, bs) / seconds / 1e12
            mfu = f"{100 * tflops / peak:.1f}%" if peak else "n/a"
            mem = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "n/a"
            print(f"{mode:<10} {bs:>5} {bs / seconds:>10.2f} {bs * shape.seq / seconds:>10.0f} "
                  f"{tflops:>8.3f} {mfu:>6} {mem:>9}")


if __name__ == "__main__":
    main()
