"""The embedded default model: a tiny LLaVA built from scratch so the whole pipeline runs offline on a CPU.

Nothing is downloaded. The tokenizer is a byte-level BPE trained on the benchmark's own text (so any string
encodes, and the vocabulary stays small), the vision tower is a CLIP encoder and the decoder a Llama, both
randomly initialised. Everything is written with ``save_pretrained`` (safetensors), so the folder loads with
``load_model`` or plain ``AutoModelForImageTextToText`` / ``AutoProcessor``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<s>", "</s>", "<unk>", "<image>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, IMAGE, USER, ASSISTANT]

# Role markers are special tokens, so the generation prompt ends on a token boundary and the prompt's
# tokens are always a prefix of the prompt+answer tokens. EOS closes every turn, so generation stops there.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@dataclass(frozen=True)
class TinySizes:
    """Shape of the tiny model; the presets below are sized for a 2-core CPU by measurement on `demo`
    during development: patch 16 on 64 px scans (16 image tokens) trained faster than patch 8 (64 tokens)
    without losing accuracy, and a 128-wide decoder learned the fine-tuning set as well as wider ones in
    less time. What the result learns: `benchmarks/learning_figures.py` (quoted in the README)."""

    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    patch_size: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vocab_size: int
    max_positions: int = 1024


TINY_SIZES: dict[str, TinySizes] = {
    "tiny": TinySizes(
        vision_hidden=128, vision_layers=2, vision_heads=4, vision_intermediate=256, patch_size=16,
        text_hidden=128, text_layers=4, text_heads=4, text_kv_heads=2, text_intermediate=384, vocab_size=2048,
    ),
    "small": TinySizes(
        vision_hidden=192, vision_layers=3, vision_heads=4, vision_intermediate=384, patch_size=16,
        text_hidden=256, text_layers=4, text_heads=4, text_kv_heads=2, text_intermediate=768, vocab_size=4096,
    ),
}


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts``; byte fallback means any later string still encodes."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE},
        additional_special_tokens=[USER, ASSISTANT],
        chat_template=CHAT_TEMPLATE,
        model_max_length=TINY_SIZES["small"].max_positions,
    )


def build_tiny_model(
    texts: Iterable[str],
    out_dir: str | Path,
    size: Literal["tiny", "small"] = "tiny",
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Build, save and return the folder of a random tiny LLaVA whose tokenizer is trained on ``texts``."""
    sizes = TINY_SIZES[size]
    if image_size % sizes.patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch size {sizes.patch_size}")
    tokenizer = train_tokenizer(texts, sizes.vocab_size)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=sizes.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped again by the "default" strategy
        chat_template=CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=sizes.vision_hidden,
            intermediate_size=sizes.vision_intermediate,
            num_hidden_layers=sizes.vision_layers,
            num_attention_heads=sizes.vision_heads,
            image_size=image_size,
            patch_size=sizes.patch_size,
            num_channels=3,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=sizes.text_hidden,
            intermediate_size=sizes.text_intermediate,
            num_hidden_layers=sizes.text_layers,
            num_attention_heads=sizes.text_heads,
            num_key_value_heads=sizes.text_kv_heads,
            max_position_embeddings=sizes.max_positions,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        ),
        image_token_id=tokenizer.image_token_id,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
