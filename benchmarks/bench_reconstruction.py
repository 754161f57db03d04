"""12-lead reconstruction quality: CardioFMForReconstruction vs the +-50 ms lagged linear baseline, side by side in
one run, on held-out PTB-XL (train folds 1-7, test fold 8, 100 Hz, 0.5-40 Hz) and BIDMC (PPG -> II/aVR).

Prints, per input set (lead I, lead II, II+V1+V5, two limb leads I+II, PPG only): mean Pearson r and MSE (mV^2) over
the generated leads for model and baseline, their ratio, and whether the model beats the baseline; next to the
published reference (MCMA, single lead -> 12 on full PTB-XL: MSE 0.0317, r 0.79) and the goals (r >= 0.80 from lead I,
>= 0.90 from II+V1+V5). BIDMC amplitudes are normalised units, so its MSE is not in mV^2 (r is scale-free).

Usage: python benchmarks/bench_reconstruction.py [--model tiny] [--steps 600] [--warmup-steps 1200] [--threads 1]
Full datasets: point --ptbxl at the full PTB-XL 1.0.3 (21,799 records; folds 1-8 train, 9 val, 10 test as usual:
--train-folds 1,2,3,4,5,6,7,8 --test-folds 10) and --model at a pretrained checkpoint, with --steps 20000 on a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cardiofm  # noqa: F401  (torchvision guard first)

REFERENCE = {"MCMA single-lead -> 12 (PTB-XL)": {"mse": 0.0317, "r": 0.79}}
GOALS = {"I": 0.80, "II+V1+V5": 0.90}


def main() -> None:
    """Train + evaluate once, print the comparison table, write results JSON."""
    here = Path(__file__).resolve().parents[1]
    data = Path(os.environ.get("CARDIOFM_SHARED_DATA", here.parent / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="preset (random init) or pretrained checkpoint dir")
    ap.add_argument("--ptbxl", default=str(data / "ptbxl"))
    ap.add_argument("--bidmc", default=str(data / "bidmc"))
    ap.add_argument("--train-folds", default="1,2,3,4,5,6,7")
    ap.add_argument("--test-folds", default="8")
    ap.add_argument("--steps", type=int, default=600, help="stage-2 (decoder) optimizer steps")
    ap.add_argument("--warmup-steps", type=int, default=1200, help="stage-1 (linear path) steps")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a shared CPU)")
    ap.add_argument("--output-dir", default="runs/bench_reconstruction")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="more ReconstructionConfig overrides")
    args = ap.parse_args()

    import torch

    from cardiofm.config import load_config
    from cardiofm.finetune.reconstruction.recipe import ReconstructionConfig, run_reconstruction

    torch.set_num_threads(args.threads)
    cfg = load_config(ReconstructionConfig, None, [
        f"model={args.model}", f"ptbxl={args.ptbxl}", f"bidmc={args.bidmc if Path(args.bidmc).exists() else ''}",
        f"train_folds=[{args.train_folds}]", f"test_folds=[{args.test_folds}]", f"train.max_steps={args.steps}",
        f"train.batch_size={args.batch_size}", f"lag_warmup_steps={args.warmup_steps}", "lag_warmup_lr=0.005",
        "train.optim.lr=0.001", "train.optim.warmup_steps=30", f"output_dir={args.output_dir}"] + args.overrides)
    t0 = time.time()
    res = run_reconstruction(cfg)
    wall = time.time() - t0
    print(f"\n{'input set':<10} {'model r':>8} {'linear r':>9} {'r ratio':>8} {'model MSE':>10} {'linear MSE':>11} "
          f"{'MSE ratio':>10} {'beats':>6} {'goal r':>7}")
    for name, s in res["sets"].items():
        if "model" not in s:
            print(f"{name:<10} skipped: {s.get('skipped')}")
            continue
        m, b = s["model"]["mean"], s["linear_baseline"]["mean"]
        beats = "yes" if s["beats_baseline"]["r"] and s["beats_baseline"]["mse"] else "no"
        goal = f"{GOALS[name]:.2f}" if name in GOALS else "-"
        print(f"{name:<10} {m['r']:8.3f} {b['r']:9.3f} {m['r'] / b['r']:8.3f} {m['mse']:10.4f} {b['mse']:11.4f} "
              f"{m['mse'] / b['mse']:10.3f} {beats:>6} {goal:>7}")
    for ref, v in REFERENCE.items():
        print(f"reference {ref}: MSE {v['mse']}, r {v['r']}")
    if "lead_table" in res:
        table = res["lead_table"]
        mt, bt = table["model"]["mean_r_generated"], table["linear_baseline"]["mean_r_generated"]
        print("single-lead input -> mean r of the 11 others, model / linear: " +
              ", ".join(f"{k} {mt[k]:.2f}/{bt[k]:.2f}" for k in mt))
    if "I" in res.get("diagnostic", {}):
        d = res["diagnostic"]["I"]
        print(f"diagnostic (superclass macro AUROC, {res['diagnostic']['classifier'][:19]}...): real "
              f"{d['model']['real']['macro_auroc']:.3f}, "
              f"model from I {d['model']['reconstructed']['macro_auroc']:.3f}, "
              f"linear from I {d['linear_baseline']['reconstructed']['macro_auroc']:.3f}")
    print(f"wall {wall:.0f} s ({args.threads} thread(s), load average {os.getloadavg()[0]:.1f}); "
          f"results in {args.output_dir}/results.json")
    sets = {k: {"model": v["model"]["mean"], "linear": v["linear_baseline"]["mean"]}
            for k, v in res["sets"].items() if "model" in v}
    Path(args.output_dir, "bench_summary.json").write_text(json.dumps(
        {"wall_s": wall, "args": vars(args), "sets": sets}, indent=1))


if __name__ == "__main__":
    main()
