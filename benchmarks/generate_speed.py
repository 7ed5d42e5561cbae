"""Time benchmark generation per preset and print row counts.

Targets (issue 2): `demo` under 30 s and `standard` (at least 1,000 patients) under 5 minutes on a 2-core CPU.

    python benchmarks/generate_speed.py [--presets demo standard] [--out bench/speed]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from medforget.world.build import generate  # noqa: E402
from medforget.world.config import preset_config  # noqa: E402

TARGET_S = {"smoke": 5.0, "demo": 30.0, "standard": 300.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["demo", "standard"])
    parser.add_argument("--out", type=Path, default=Path("bench/speed"))
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}")
    print(f"{'preset':<9} {'patients':>8} {'scans':>6} {'rows':>8} {'seconds':>8} {'target':>7}  ok")
    for preset in args.presets:
        out = args.out / preset
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        meta = generate(preset_config(preset), seed=0, forget_ratio=0.1, out=out)
        seconds = time.perf_counter() - start
        rows = sum(n for name, n in meta["counts"].items() if name != "scans")
        patients = sum(meta["patients"].values())
        ok = "yes" if seconds < TARGET_S[preset] else "NO"
        print(f"{preset:<9} {patients:>8} {meta['counts']['scans']:>6} {rows:>8} {seconds:>8.1f} {TARGET_S[preset]:>7.0f}  {ok}")
        for name, n in meta["counts"].items():
            print(f"    {name:<17} {n:>8}")


if __name__ == "__main__":
    main()
