"""Metrics out of the loop: accelerate trackers (TensorBoard), a metrics.jsonl file, figures, throughput timing."""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

logger = logging.getLogger(__name__)


class MetricsLogger:
    """Main-process sink: `accelerator.log` (TensorBoard by default) + one JSON line per logged step."""

    def __init__(self, accelerator, output_dir: str | Path):
        self.accelerator = accelerator
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / "metrics.jsonl"

    def log(self, values: dict, step: int) -> None:
        """Record scalar metrics at `step` (every process may call; only the main process writes)."""
        if not self.accelerator.is_main_process:
            return
        clean = {k: float(v) for k, v in values.items()}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator.log(clean, step=step)
        with self.path.open("a", encoding="utf-8") as f:
            # repr of a python float round-trips exactly: resumed runs are compared bit for bit
            f.write(json.dumps({"step": step, **clean}) + "\n")

    def log_step(self, step: int, values: dict, meter: "ThroughputMeter") -> dict:
        """Losses (averaged over processes), lr, grad norm, throughput and data-wait fraction at `step`; collective."""
        import torch

        acc = self.accelerator
        names = sorted(values)
        stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float32).to(acc.device) for k in names])
        if acc.num_processes > 1:
            stacked = acc.reduce(stacked, reduction="mean")
        out = dict(zip(names, stacked.tolist()))
        out.update(meter.report(acc.num_processes))
        self.log(out, step)
        return out

    def log_run_summary(self, meter: "ThroughputMeter") -> None:
        """End of run, every process: how much of its loop time went to waiting for the DataLoader."""
        acc = self.accelerator
        run = meter.summary(acc.num_processes)
        logger.info("rank %d data wait %.1f%% of the loop (%.1f s waiting for data, %.1f s computing), "
                    "%.1f samples/s over the run", acc.process_index, 100 * run["data_fraction"],
                    run["data_s"], run["compute_s"], run["samples_per_s"])
        if run["data_fraction"] > 0.2:
            logger.warning("the model waited for data %.0f%% of the time: raise train.num_workers or read a "
                           "prepared corpus (see docs/throughput.md)", 100 * run["data_fraction"])

    def log_figures(self, figures: dict, step: int) -> None:
        """Save matplotlib figures as PNG under plots/ and add them to TensorBoard; closes them."""
        if not self.accelerator.is_main_process or not figures:
            return
        import matplotlib.pyplot as plt

        plot_dir = self.output_dir / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        writer = None
        if any(t.name == "tensorboard" for t in self.accelerator.trackers):
            writer = self.accelerator.get_tracker("tensorboard", unwrap=True)
        for name, fig in figures.items():
            fig.savefig(plot_dir / f"{name.replace('/', '_')}_step{step:08d}.png", dpi=80)
            if writer is not None:
                writer.add_figure(name, fig, global_step=step, close=False)
            plt.close(fig)


class ThroughputMeter:
    """Wall time split into waiting for data and computing, with samples and tokens counted between reports.

    `report()` covers the window since the previous report; `summary()` covers the whole run so far.
    """

    def __init__(self):
        self.run_data_s = self.run_compute_s = 0.0
        self.run_samples = 0
        self._run_t0 = time.perf_counter()
        self.reset()

    def reset(self) -> None:
        """Start a new reporting window."""
        self.data_s = self.compute_s = 0.0
        self.samples = self.tokens = 0
        self._t0 = time.perf_counter()

    def add(self, data_s: float, compute_s: float, samples: int, tokens: int) -> None:
        """Account one micro-batch: seconds waiting for it, seconds computing on it, its samples and tokens."""
        self.data_s += data_s
        self.compute_s += compute_s
        self.samples += samples
        self.tokens += tokens
        self.run_data_s += data_s
        self.run_compute_s += compute_s
        self.run_samples += samples

    def report(self, num_processes: int = 1) -> dict:
        """samples/s and tokens/s over all processes (local counts x processes) and the data-wait fraction."""
        wall = max(time.perf_counter() - self._t0, 1e-9)
        busy = max(self.data_s + self.compute_s, 1e-9)
        out = {"perf/samples_per_s": self.samples * num_processes / wall,
               "perf/tokens_per_s": self.tokens * num_processes / wall,
               "perf/data_fraction": self.data_s / busy}
        self.reset()
        return out

    def summary(self, num_processes: int = 1) -> dict:
        """Whole-run figures of this process: seconds waiting for data and computing, data-wait fraction,
        samples/s over all processes (wall time from the meter's creation)."""
        wall = max(time.perf_counter() - self._run_t0, 1e-9)
        busy = max(self.run_data_s + self.run_compute_s, 1e-9)
        return {"data_s": self.run_data_s, "compute_s": self.run_compute_s, "data_fraction": self.run_data_s / busy,
                "samples_per_s": self.run_samples * num_processes / wall, "wall_s": wall}


def is_finite(value: float) -> bool:
    """False for NaN and +-inf."""
    return math.isfinite(value)
