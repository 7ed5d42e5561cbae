"""Tiny random models of every family the README names, built from their real config classes, with their
real chat templates and image-token layouts; nothing is downloaded.

Processors whose class also builds a video processor (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision) need
torchvision, which has no build beside the pinned CPU torch; they are replaced here by image-only subclasses
that keep everything else (tokens, templates, the image processor's output layout). Tied input and output
embeddings wherever the released checkpoints of a family tie them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    CLIPVisionConfig,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlamaConfig,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessorPil,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
    SiglipImageProcessorPil,
)

from medforget.models.tiny import build_tiny_model, train_tokenizer

TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2}
SIGLIP = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
          "num_attention_heads": 2, "image_size": 32, "patch_size": 8}
VOCAB = 512


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without its video processor, whose class needs torchvision (not installed here)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2_5_VLProcessor without its video processor (torchvision)."""

    __init__ = ImageOnlyQwen2VLProcessor.__init__


class ImageOnlyLlavaOnevisionProcessor(LlavaOnevisionProcessor):
    """LlavaOnevisionProcessor without its video processor (torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, num_image_tokens=None,
                 vision_feature_select_strategy=None, **kwargs):
        self.num_image_tokens, self.vision_feature_select_strategy = num_image_tokens, vision_feature_select_strategy
        self.image_token, self.video_token, self.vision_aspect_ratio = "<image>", "<video>", "anyres_max_9"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


# Qwen2-VL's and Qwen2.5-VL's template (the released one, less tools and videos' ids).
QWEN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# SmolVLM's own template.
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# Gemma 3's turns (the released template, less system prompts and tools).
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
    "else message['role'] %}<start_of_turn>{{ role }}\n{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>{% elif item['type'] == 'text' %}{{ item['text'] | trim }}"
    "{% endif %}{% endfor %}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
# LLaVA-OneVision's ChatML turns with the images first.
ONEVISION_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for c in message['content'] if c['type'] == 'image' %}<image>{% endfor %}"
    "{% for c in message['content'] if c['type'] == 'text' %}{{ c['text'] }}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# LLaVA-NeXT (llava-v1.6-mistral)'s [INST] turns.
LLAVA_NEXT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}[INST] "
    "{% for c in message['content'] if c['type'] == 'image' %}<image>\n{% endfor %}"
    "{% for c in message['content'] if c['type'] == 'text' %}{{ c['text'] }}{% endfor %} [/INST]"
    "{% else %} {{ message['content'][0]['text'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
# PaliGemma ships no chat template; its users write the task prefix and the images, and the processor adds
# BOS after the images and "\n" after the prefix. The answer (the "suffix") ends with EOS.
PALIGEMMA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{% for c in message['content'] if c['type'] == 'image' %}<image>{% endfor %}answer en "
    "{% for c in message['content'] if c['type'] == 'text' %}{{ c['text'] }}{% endfor %}"
    "{% else %}{{ '\\n' + message['content'][0]['text'] + eos_token }}{% endif %}{% endfor %}"
)


def family_tokenizer(texts: Sequence[str], extra: list[str], named: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    """The embedded default's byte-level BPE with a family's special tokens (``named`` ones as attributes)."""
    base = train_tokenizer(texts, VOCAB)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer, bos_token=base.bos_token, eos_token=base.eos_token,
        pad_token=base.pad_token, unk_token=base.unk_token,
        extra_special_tokens={"image_token": "<image>", **(named or {})},
    )
    tokenizer.add_special_tokens({"additional_special_tokens": extra})
    return tokenizer


def _seeded(model_class: type[PreTrainedModel], config) -> PreTrainedModel:
    torch.manual_seed(0)
    return model_class(config).eval()


def build_llava(texts: Sequence[str], folder: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    build_tiny_model(texts, folder, image_size=32)
    return AutoModelForImageTextToText.from_pretrained(folder, use_safetensors=True).eval(), AutoProcessor.from_pretrained(folder)


def _qwen(texts: Sequence[str], config_class, model_class, processor_class, **vision) -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = family_tokenizer(
        texts, ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    )
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=64 * 64
    )
    processor = processor_class(image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN_TEMPLATE)
    config = config_class(
        vision_config={"depth": 1, "hidden_size": 32, "num_heads": 2, "patch_size": 8, "spatial_merge_size": 2,
                       "temporal_patch_size": 2, **vision},
        text_config={**TEXT, "vocab_size": len(tokenizer), "max_position_embeddings": 1024,
                     "rope_parameters": {"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 10000.0},
                     "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>")},
        image_token_id=processor.image_token_id,
        video_token_id=processor.video_token_id,
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        tie_word_embeddings=True,  # as the 2B / 3B checkpoints
    )
    return _seeded(model_class, config), processor


def build_qwen2_vl(texts: Sequence[str], folder: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    return _qwen(texts, Qwen2VLConfig, Qwen2VLForConditionalGeneration, ImageOnlyQwen2VLProcessor, embed_dim=32)


def build_qwen2_5_vl(texts: Sequence[str], folder: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    return _qwen(texts, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, ImageOnlyQwen2_5_VLProcessor,
                 intermediate_size=64, out_hidden_size=TEXT["hidden_size"], window_size=16, fullatt_block_indexes=[0])


def build_idefics3(texts: Sequence[str], folder: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = family_tokenizer(texts, ["<|im_start|>", "<fake_token_around_image>", "<end_of_utterance>", "<global-img>"])
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32}
    )
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                  chat_template=SMOLVLM_TEMPLATE)
    config = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        text_config=LlamaConfig(**TEXT, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id),
        scale_factor=2,
        image_token_id=processor.image_token_id,
        tie_word_embeddings=True,  # as SmolVLM-256M / 500M
    )
    return _seeded(Idefics3ForConditionalGeneration, config), processor


def build_paligemma(texts: Sequence[str], folder: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = family_tokenizer(texts, [])
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=PALIGEMMA_TEMPLATE)
    config = PaliGemmaConfig(
        vision_config=SIGLIP,
        text_config={"model_type": "gemma", "vocab_size": len(tokenizer), **TEXT, "head_dim": 8,
                     "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id},
        image_token_id=processor.image_token_id,
        projection_dim=32,
        tie_word_embeddings=True,
    )
    return _seeded(PaliGemmaForConditionalGeneration, config), processor


def build_gemma3(texts: Sequence[str], folder: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    named = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    tokenizer = family_tokenizer(texts, ["<start_of_turn>", "<end_of_turn>"], named)
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessorPil(size={"height": 32, "width": 32}),
                                tokenizer=tokenizer, image_seq_length=4, chat_template=GEMMA3_TEMPLATE)
    config = Gemma3Config(
        vision_config=SIGLIP,
        text_config={**TEXT, "vocab_size": len(tokenizer), "head_dim": 8, "query_pre_attn_scalar": 8,
                     "sliding_window": 16, "layer_types": ["sliding_attention", "full_attention"],
                     "max_position_embeddings": 1024, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.convert_tokens_to_ids("<end_of_turn>")},
        mm_tokens_per_image=4,
        boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
        tie_word_embeddings=True,
    )
    model = _seeded(Gemma3ForConditionalGeneration, config)
    with torch.no_grad():  # initialised to zeros, which a released checkpoint's projector is not
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.2)
    return model, processor


def build_llava_onevision(texts: Sequence[str], folder: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = family_tokenizer(texts, ["<|im_start|>", "<|im_end|>", "<video>"])
    pinpoints = [[32, 32], [32, 64], [64, 32]]
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints)
    processor = ImageOnlyLlavaOnevisionProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                                 chat_template=ONEVISION_TEMPLATE, num_image_tokens=16,
                                                 vision_feature_select_strategy="full")
    config = LlavaOnevisionConfig(
        vision_config=SIGLIP,
        text_config={"model_type": "qwen2", **TEXT, "vocab_size": len(tokenizer), "max_position_embeddings": 1024,
                     "pad_token_id": tokenizer.pad_token_id,
                     "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>")},
        image_token_index=processor.image_token_id,
        video_token_index=processor.video_token_id,
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        tie_word_embeddings=True,  # as the 0.5B checkpoint
    )
    return _seeded(LlavaOnevisionForConditionalGeneration, config), processor


def build_llava_next(texts: Sequence[str], folder: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = family_tokenizer(texts, [])
    pinpoints = [[32, 32], [32, 64], [64, 32]]
    image_processor = LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                                 image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=LLAVA_NEXT_TEMPLATE)
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=32, patch_size=8),
        text_config=LlamaConfig(**TEXT, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=tokenizer.eos_token_id),
        image_token_index=processor.image_token_id,
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        tie_word_embeddings=False,  # as the Mistral / Vicuna checkpoints
    )
    return _seeded(LlavaNextForConditionalGeneration, config), processor


@dataclass(frozen=True)
class FamilySpec:
    build: Callable[[Sequence[str], Path], tuple[PreTrainedModel, ProcessorMixin]]
    end_of_turn: str  # what the chat template writes after an answer
    tied: bool  # lm_head shares the input embeddings


FAMILIES: dict[str, FamilySpec] = {
    "llava": FamilySpec(build_llava, "</s>", tied=False),
    "llava_next": FamilySpec(build_llava_next, "</s>", tied=False),
    "qwen2_vl": FamilySpec(build_qwen2_vl, "<|im_end|>", tied=True),
    "qwen2_5_vl": FamilySpec(build_qwen2_5_vl, "<|im_end|>", tied=True),
    "idefics3": FamilySpec(build_idefics3, "<end_of_utterance>", tied=True),
    "paligemma": FamilySpec(build_paligemma, "</s>", tied=True),
    "gemma3": FamilySpec(build_gemma3, "<end_of_turn>", tied=True),
    "llava_onevision": FamilySpec(build_llava_onevision, "<|im_end|>", tied=True),
}
