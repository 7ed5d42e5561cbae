"""The synthetic biomedical world: patients, scans, medical facts, questions and splits."""

from medforget.world.config import PRESETS, WorldConfig, preset_config
from medforget.world.storage import Benchmark, load_benchmark

__all__ = ["PRESETS", "WorldConfig", "preset_config", "Benchmark", "load_benchmark"]
