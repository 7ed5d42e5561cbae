"""How far a protection moves the encoder's view of a scan: why protect-eval's attacker still learns identity.

    python benchmarks/protect_features.py runs/demo            # encoder: RUN/models/vanilla, holdout scans

For each setting, protects the holdout patients' training scans against the run's vanilla model and prints
the mean PSNR, the cosine between each protected scan's projected features (mean over image tokens, what
`medforget protect` optimises) and its clean scan's, and identity retrieval: the share of clean *test* scans
whose nearest training scan by those features belongs to the same patient, with clean and with protected
training scans. A protection that hides identity from the encoder would bring the latter toward chance. The
first two rows are the reference: PSNR and cosine between a patient's test scan and the same patient's training
scans (other acquisitions: the variation that fine-tuning on the training scans already generalises across),
and between a test scan and other patients' training scans.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from medforget.protect.attacks import Protector, plan_batches, protect_batches, to_pixels  # noqa: E402
from medforget.protect.encoder import VisionEncoder  # noqa: E402
from medforget.protect.quality import psnr  # noqa: E402
from medforget.world.storage import load_benchmark  # noqa: E402

SETTINGS = {  # name -> Protector options (eps 8/255 throughout)
    "targeted, 35 dB floor, 20 L2 steps of 2/255": dict(method="targeted", steps=20, step_size=2 / 255, random_start=False, min_psnr=35.0),
    "antithetical, 35 dB floor, 20 L2 steps": dict(method="antithetical", steps=20, step_size=2 / 255, random_start=False, min_psnr=35.0),
    "error_min, 35 dB floor, 20 L2 steps": dict(method="error_min", steps=20, step_size=2 / 255, random_start=False, min_psnr=35.0),
    "targeted, no floor, 30 sign steps of 2/255": dict(method="targeted", steps=30, step_size=2 / 255, random_start=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--encoder", default="vanilla", help="model folder under RUN_DIR/models")
    args = parser.parse_args()
    torch.manual_seed(0)
    bench = load_benchmark(args.run_dir / "bench")
    encoder = VisionEncoder.load(args.run_dir / "models" / args.encoder)
    scans = [s for s in bench["scans"].remove_columns("image").to_list() if s["group"] == "holdout"]
    train = [s for s in scans if s["role"] == "train"]
    test = [s for s in scans if s["role"] == "test"]

    def pixels(rows: list[dict]) -> np.ndarray:
        return np.stack([np.asarray(bench.image(s["scan_id"]).convert("L"))[..., None] for s in rows])

    def features(batch: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return F.normalize(encoder.embed(to_pixels(batch, encoder.device)), dim=-1)

    def same_patient(train_features: torch.Tensor) -> float:
        nearest = (test_features @ train_features.T).argmax(1).tolist()
        return sum(train[k]["patient_id"] == t["patient_id"] for t, k in zip(test, nearest)) / len(test)

    clean, test_features = pixels(train), features(pixels(test))
    clean_features = features(clean)
    print(f"{len(train)} training and {len(test)} test scans of {len({s['patient_id'] for s in scans})} holdout patients; "
          f"encoder {args.encoder}; chance of retrieving the right patient {1 / len({s['patient_id'] for s in scans}):.2f}")
    print(f"{'setting':<46} {'PSNR dB':>8} {'cos to clean':>13} {'same patient, clean / protected':>33}")
    # The reference: how far a patient's other scans (what the attacker must generalise across) lie from each other.
    test_pixels = pixels(test)
    for label, same in (("another scan of the same patient", True), ("a scan of another patient", False)):
        pairs = [(i, j) for i, t in enumerate(test) for j, s in enumerate(train) if (s["patient_id"] == t["patient_id"]) == same]
        other_psnr = np.mean([psnr(test_pixels[i], clean[j]) for i, j in pairs])
        other_cos = float(np.mean([float(test_features[i] @ clean_features[j]) for i, j in pairs]))
        print(f"{'(none: ' + label + ')':<46} {other_psnr:>8.1f} {other_cos:>13.3f}")
    for name, options in SETTINGS.items():
        protector = Protector(encoder, eps=8 / 255, seed=0, **options)
        protected = clean.copy()
        batches = plan_batches([x.shape for x in clean], 16)
        for indices, _, out in protect_batches(protector, lambda i: clean[i], batches, [s["patient_id"] for s in train]):
            protected[indices] = out
        mean_psnr = np.mean([psnr(c, p) for c, p in zip(clean, protected)])
        moved = features(protected)
        cosine = float((moved * clean_features).sum(1).mean())
        print(f"{name:<46} {mean_psnr:>8.1f} {cosine:>13.3f} {same_patient(clean_features):>22.2f} / {same_patient(moved):.2f}")


if __name__ == "__main__":
    main()
