"""Raw state dicts as safetensors files, tied weights included.

safetensors refuses tensors that share memory, and many released VLMs tie ``lm_head`` to the input
embeddings. Like ``save_pretrained``, each group of identical shared tensors is written once; unlike it,
the other names are kept in the file's metadata, so that ``load_state`` gives back every key and a strict
``load_state_dict`` (the resume path) works on any model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

ALIASES = "medforget.aliases"  # metadata entry: {"dropped name": "name written"}


def save_state(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write `state` with each tied tensor once (views that only overlap are copied)."""
    written: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple, str] = {}  # (storage, offset, shape, stride) -> the name written
    storages: set[tuple] = set()
    for name in sorted(state):
        tensor = state[name].detach()
        storage = (tensor.device, tensor.untyped_storage().data_ptr())
        view = (*storage, tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        if view in first:
            aliases[name] = first[view]
            continue
        first[view] = name
        shared = storage in storages
        storages.add(storage)
        tensor = tensor.cpu()
        written[name] = tensor.clone() if shared or not tensor.is_contiguous() else tensor
    save_file(written, path, metadata={ALIASES: json.dumps(aliases)})


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Every key `save_state` was given; tied names share the tensor read."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    state = load_file(path)
    for alias, name in json.loads(metadata.get(ALIASES, "{}")).items():
        state[alias] = state[name]
    return state
