"""How strongly a patient's scans identify the patient in each identity cue's world (`generate --identity-cue`).

    python benchmarks/identity_cue.py                  # demo, seed 0, the pretrain patients (4 scans each)
    python benchmarks/identity_cue.py --sheet /tmp/cues.png   # also a contact sheet: rows = patients

Pixel space only (no model): each scan is blurred (sigma 1.5 px) and standardised, the feature of
tests/test_world_generate.py's distance test, which discounts acquisition noise and gain. For each cue it
prints, over patients of the same modality and region (so only the patient tells two scans apart):
- the mean absolute difference of two scans of one patient and of two patients, and their ratio (the test
  asks for at most 0.8), with the number of pairs;
- the mean cosine of the same pairs;
- retrieval: the share of patients whose last scan's nearest neighbour among the other scans of the same
  modality and region (the patient's three others, everyone else's four) is the patient's own, with a 95 %
  Wilson interval and the chance rate;
- a third row, `neither`: the anatomy world with its traits taken out (the marker world without its marker),
  the identity that the body axes and organ places both worlds share leave on their own;
- the size of the cue's own signal: the RMS change (grey levels of 255) the cue makes to a clean scan (the
  marker drawn or not; the anatomy traits present or set to a neutral anatomy), the share of body pixels it
  moves by more than 8 grey levels, and for scale the RMS of the acquisition noise and degradation.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import binomtest

from medforget.world.config import IDENTITY_CUES, preset_config
from medforget.world.population import build_population
from medforget.world.scans import render


def feature(img: np.ndarray) -> np.ndarray:
    f = gaussian_filter(img.astype(np.float32), 1.5)
    return ((f - f.mean()) / (f.std() + 1e-6)).ravel()


def without_cue(sig: dict) -> dict:
    """The same patient with the cue's own signal taken out (the shared body axes and organ places stay)."""
    if "outline" in sig:
        return {**sig, "outline": [[0.0, 0.0]] * len(sig["outline"]), "organ_form": [[1.2, 0.0]] * len(sig["organs"]),
                "bone": [0.9, 1.0], "old_lesions": [], "texture": []}
    return {**sig, "marker_size": 1e-9}  # a marker too small to cover any pixel centre


def measure(cue: str, preset: str, seed: int, size: int, bare_world: bool = False) -> dict:
    """`bare_world`: the scans drawn without the cue's signal, the identity that body axes and organ places
    alone leave (the floor both cues add to)."""
    pop = build_population(preset_config(preset).with_overrides(identity_cue=cue), seed)
    specs = [s for s in pop.scans if s.patient.group == "pretrain"]
    feats, signal, noise, moved = [], [], [], []
    for s in specs:
        p = s.patient
        sig = without_cue(p.signature) if bare_world else p.signature
        args = (p.modality, p.region, sig, s.lesion(), s.acquisition, s.quality, size)
        img, clean = render(*args).astype(np.float32), render(*args, clean=True).astype(np.float32)
        bare = render(p.modality, p.region, without_cue(p.signature), s.lesion(), s.acquisition, s.quality, size, clean=True)
        delta = clean - bare.astype(np.float32)
        feats.append(feature(img))
        signal.append(float(np.sqrt(np.mean(delta ** 2))))
        noise.append(float(np.sqrt(np.mean((img - clean) ** 2))))
        inside = clean > 10
        moved.append(float(np.mean(np.abs(delta[inside]) > 8)) if inside.any() else 0.0)
    feats = np.stack(feats)
    groups = defaultdict(list)
    for i, s in enumerate(specs):
        groups[(s.patient.modality, s.patient.region)].append(i)
    same_d, other_d, same_c, other_c = [], [], [], []
    hits = queries = pool = 0
    for members in groups.values():
        f = feats[members]
        dist = np.abs(f[:, None, :] - f[None, :, :]).mean(-1)
        cos = (f @ f.T) / (np.linalg.norm(f, axis=1)[:, None] * np.linalg.norm(f, axis=1)[None, :])
        owner = np.array([specs[i].patient.patient_id for i in members])
        same = owner[:, None] == owner[None, :]
        upper = np.triu(np.ones_like(same), 1).astype(bool)
        same_d += dist[same & upper].tolist()
        other_d += dist[~same & upper].tolist()
        same_c += cos[same & upper].tolist()
        other_c += cos[~same & upper].tolist()
        last = {pid: k for k, pid in enumerate(owner)}  # each patient's last scan is the query
        for pid, k in last.items():
            if len(set(owner)) < 2:
                continue
            d = dist[k].copy()
            d[k] = np.inf
            hits += int(owner[int(np.argmin(d))] == pid)
            queries += 1
            pool += len(set(owner))
    ci = binomtest(hits, queries).proportion_ci(method="wilson")
    return {
        "cue": cue, "same_dist": np.mean(same_d), "other_dist": np.mean(other_d), "ratio": np.mean(same_d) / np.mean(other_d),
        "same_pairs": len(same_d), "other_pairs": len(other_d), "same_cos": np.mean(same_c), "other_cos": np.mean(other_c),
        "top1": hits / queries, "ci": (ci.low, ci.high), "queries": queries, "chance": queries / pool,
        "signal": np.mean(signal), "moved": np.mean(moved), "noise": np.mean(noise), "scans": len(specs),
    }


def sheet(path: Path, preset: str, seed: int, size: int, patients: int = 4) -> None:
    """Rows: the first pretrain patients' scans, marker world above, anatomy world below."""
    from PIL import Image

    rows = []
    for cue in IDENTITY_CUES:
        pop = build_population(preset_config(preset).with_overrides(identity_cue=cue), seed)
        chosen = [p for p in pop.patients if p.group == "pretrain"][:patients]
        for p in chosen:
            scans = pop.scans_of(p.patient_id)
            rows.append(np.concatenate([render(p.modality, p.region, p.signature, s.lesion(), s.acquisition, s.quality, size) for s in scans], 1))
    Image.fromarray(np.concatenate(rows, 0)).resize((rows[0].shape[1] * 2, len(rows) * size * 2), Image.NEAREST).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", type=Path, default=None, help="also write a contact sheet PNG here")
    args = parser.parse_args()
    size = preset_config(args.preset).image_size
    print(f"{args.preset}, seed {args.seed}, pretrain patients, {size} px; same modality and region in every comparison")
    print(f"{'cue':8} {'dist same':>9} {'other':>7} {'ratio':>6} {'cos same':>9} {'other':>7} "
          f"{'top-1 own (95% CI)':>22} {'chance':>7} {'cue RMS':>8} {'moved':>6} {'noise RMS':>9}")
    for cue, bare in (*((c, False) for c in IDENTITY_CUES), ("anatomy", True)):
        m = measure(cue, args.preset, args.seed, size, bare_world=bare)
        cue = "neither" if bare else cue
        print(f"{cue:8} {m['same_dist']:9.3f} {m['other_dist']:7.3f} {m['ratio']:6.2f} {m['same_cos']:9.3f} {m['other_cos']:7.3f} "
              f"{m['top1']:8.3f} ({m['ci'][0]:.3f}-{m['ci'][1]:.3f}) {m['chance']:7.3f} {m['signal']:8.1f} {m['moved']:6.1%} {m['noise']:9.1f}")
        print(f"{'':8} n: {m['same_pairs']} same-patient pairs, {m['other_pairs']} other pairs, {m['queries']} queries, {m['scans']} scans")
    if args.sheet:
        sheet(args.sheet, args.preset, args.seed, size)
        print(f"contact sheet -> {args.sheet}")


if __name__ == "__main__":
    main()
