"""Methods by name, and `--set key=value` options turned into typed hyperparameters and training options.

Typos must fail loudly: an unknown key or a value of the wrong type is a one-line error that lists every
valid key with its type, never a silently ignored option.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any, TypeVar, get_type_hints

from medforget.errors import MedforgetError
from medforget.methods.base import Method, at_least
from medforget.models.lora import LoraSettings
from medforget.train.config import TrainConfig

M = TypeVar("M", bound=type[Method])

# Training options any method accepts through --set; lora_r 0 trains all weights, r > 0 LoRA of rank r.
TRAINING_KEYS: dict[str, type] = {
    "epochs": float, "lr": float, "batch_size": int, "grad_accum": int, "max_steps": int, "seed": int, "lora_r": int,
    "train_vision": bool,
}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_METHODS: dict[str, Method] = {}


def register(cls: M) -> M:
    """Class decorator adding a method under `cls.name`."""
    clash = TRAINING_KEYS.keys() & param_types(cls).keys()
    if clash:
        raise ValueError(f"{cls.__name__} hyperparameters {sorted(clash)} clash with training options")
    if cls.name in _METHODS:
        raise ValueError(f"a method named {cls.name!r} is already registered")
    _METHODS[cls.name] = cls()
    return cls


def get_method(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise MedforgetError(f"unknown method {name!r}; choose one of: {', '.join(_METHODS)}") from None


def all_methods() -> list[Method]:
    """Every registered method, in registration order."""
    return list(_METHODS.values())


def param_types(method: Method | type[Method]) -> dict[str, type]:
    """Hyperparameter name -> type, from the annotations of the method's Params dataclass."""
    hints = get_type_hints(method.Params)
    return {f.name: hints[f.name] for f in fields(method.Params)}


def param_defaults(method: Method) -> dict[str, Any]:
    defaults = method.Params()
    return {f.name: getattr(defaults, f.name) for f in fields(method.Params)}


def parse_overrides(method: Method, items: list[str]) -> tuple[Any, dict[str, Any]]:
    """`["key=value", ...]` -> (the method's Params, training options for `apply_training`)."""
    params = param_types(method)
    valid = {**params, **TRAINING_KEYS}
    listing = ", ".join(f"{key}: {kind.__name__}" for key, kind in valid.items())
    chosen: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise MedforgetError(f"--set expects key=value, got {item!r}; valid keys for {method.name}: {listing}")
        if key not in valid:
            raise MedforgetError(f"unknown option {key!r} for method {method.name}; valid keys: {listing}")
        if key in chosen:
            raise MedforgetError(f"option {key!r} is set twice")
        chosen[key] = _coerce(key, text.strip(), valid[key], listing)
    hp = method.Params(**{k: v for k, v in chosen.items() if k in params})
    return hp, {k: v for k, v in chosen.items() if k in TRAINING_KEYS}


def apply_training(cfg: TrainConfig, options: dict[str, Any]) -> TrainConfig:
    """Training options from `parse_overrides` on top of a method's default configuration."""
    for key in ("epochs", "lr"):
        if key in options:
            at_least(key, options[key], 0, strict=True)
    for key in ("batch_size", "grad_accum", "max_steps"):
        if key in options:
            at_least(key, options[key], 1)
    for key in ("seed", "lora_r"):
        if key in options:
            at_least(key, options[key], 0)
    rest = {k: v for k, v in options.items() if k != "lora_r"}
    cfg = cfg.with_overrides(**rest)
    if "lora_r" in options:
        r = options["lora_r"]
        cfg = replace(cfg, lora=LoraSettings(r=r, alpha=2 * r) if r else None)
    return cfg


def _coerce(key: str, text: str, kind: type, listing: str) -> Any:
    try:
        if kind is bool:
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
        return kind(text)
    except ValueError:
        raise MedforgetError(f"bad value {text!r} for {key} (expected {kind.__name__}); valid keys: {listing}") from None
