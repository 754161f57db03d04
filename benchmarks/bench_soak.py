"""Soak benchmark: `prepare` over the malformed-record set and a short pretraining, each in a child process under a
memory cap (resource.setrlimit), with peak RSS; per-case time against the clean records of the same run; and the
plausibility gate's false-reject rate over every real shared PTB-XL, CinC 2021, MIT-BIH and BIDMC record.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_soak.py [--cap-gib 2] [--steps 20]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CARDIOFM_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "tests"))  # the malformed-record generator is the test suite's fixture module


def _capped(cap_bytes: int):
    """preexec_fn: cap the child's data segment (heap) at cap_bytes; address space stays free for library maps."""
    def apply():
        resource.setrlimit(resource.RLIMIT_DATA, (cap_bytes, cap_bytes))
    return apply


_PEAK = ("import atexit, resource, sys; atexit.register(lambda: print('PEAK_KIB', "
         "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)); ")


def _child(code: str, cap_gib: float) -> tuple[int, float, float, str]:
    """Run python code in a capped child -> (return code, seconds, its peak RSS MiB, stderr tail)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", _PEAK + code], cwd=ROOT, env=env, capture_output=True, text=True,
                          preexec_fn=_capped(int(cap_gib * 2 ** 30)))
    peaks = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KIB")]
    return proc.returncode, time.time() - t0, (peaks[-1] / 1024 if peaks else float("nan")), proc.stderr[-1500:]


def per_case_seconds(root: Path, names: list[str]) -> dict[str, float]:
    """Seconds to read, gate and window each record as prepare does (best of 3)."""
    from cardiofm.data import PreprocessConfig
    from cardiofm.data.corpus.prepare import task_rows
    from cardiofm.data.corpus.sources import SOURCES, SourceOptions
    from cardiofm.data.record import RecordError

    cfg, opts, src, out = PreprocessConfig(), SourceOptions(root=str(root)), SOURCES["wfdb"], {}
    for name in names:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            try:
                task_rows(src.read(str(root / name), opts), cfg)
            except (RecordError, ValueError):
                pass
            best = min(best, time.perf_counter() - t0)
        out[name] = best
    return out


def false_rejects() -> tuple[int, int, list[str]]:
    """(records rejected by the gate, records checked, rejected names) over the shared real records."""
    from cardiofm.data import PreprocessConfig
    from cardiofm.data.preprocess import check_quality
    from cardiofm.data.readers.bidmc import bidmc_files, read_bidmc
    from cardiofm.data.readers.cinc2021 import read_cinc2021
    from cardiofm.data.readers.wfdb import read_wfdb

    jobs = [(read_wfdb, str(p)[:-4]) for sub in ("records100", "records500")
            for p in sorted((DATA / "ptbxl" / sub).rglob("*.hea"))]
    jobs += [(read_cinc2021, str(p)[:-4]) for p in sorted((DATA / "torch_ecg_sample" / "cinc2021").glob("*.hea"))]
    jobs += [(read_wfdb, str(p)[:-4]) for p in sorted((DATA / "mitdb").glob("*.hea"))]
    jobs += [(read_bidmc, p) for p in bidmc_files(str(DATA / "bidmc"))]
    bad = [os.path.basename(p) for read, p in jobs if check_quality(read(p), PreprocessConfig())]
    return len(bad), len(jobs), bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap-gib", type=float, default=2.0, help="RLIMIT_DATA of each child, GiB")
    ap.add_argument("--steps", type=int, default=20, help="pretraining steps of the soak run")
    args = ap.parse_args()
    import malformed

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        kept, bad = malformed.build(tmp / "records", DATA / "ptbxl" / "records100" / "00000")
        (tmp / "labels.csv").write_text("code\nNORM\n")
        opts = f"SourceOptions(root={str(tmp / 'records')!r}, label_map={str(tmp / 'labels.csv')!r})"
        code = ("import json; from cardiofm.data.corpus import prepare_corpus; "
                "from cardiofm.data.corpus.sources import SourceOptions; "
                f"c = prepare_corpus('wfdb', {opts}, {str(tmp / 'corpus')!r}, "
                "progress=False); print(json.dumps(c['summary']))")
        rc, sec, peak_prepare, err = _child(code, args.cap_gib)
        assert rc == 0, err
        summary = json.loads((tmp / "corpus" / "corpus.json").read_text())["summary"]
        times = per_case_seconds(tmp / "records", sorted(kept) + sorted(bad))
        clean = max(times[n] for n in malformed.GOOD)
        slowest = max(bad, key=times.get)
        code = ("import sys; from cardiofm.cli.main import main; sys.argv = ['cardiofm', 'pretrain', '--output-dir', "
                f"{str(tmp / 'pre')!r}, 'train.max_steps={args.steps}', 'train.batch_size=4', 'train.log_every=5', "
                "'train.eval_every=0', 'train.plot_every=0', 'data.eval_size=4', 'data.synthetic_size=64', "
                "'train.trackers=[none]', 'train.checkpoint_every=5']; sys.exit(main())")
        rc2, sec2, peak_pre, err2 = _child(code, args.cap_gib)
    n_bad, n_all, names = false_rejects()
    print(f"load {open('/proc/loadavg').read().split()[:3]}; memory cap (RLIMIT_DATA) {args.cap_gib:g} GiB per child")
    print(f"prepare over {len(bad)} malformed + {len(kept)} kept records: rc {rc}, {sec:.1f} s, peak RSS "
          f"{peak_prepare:.0f} MiB; {summary['records_quarantined']} quarantined, {summary['records_ok']} kept")
    print(f"per record: clean max {1000 * clean:.1f} ms, slowest malformed {slowest} {1000 * times[slowest]:.1f} ms "
          f"({times[slowest] / clean:.2f}x clean)")
    print(f"pretraining {args.steps} steps (tiny, synthetic) under the cap: rc {rc2}, {sec2:.1f} s, peak RSS "
          f"{peak_pre:.0f} MiB {'' if rc2 == 0 else err2}")
    print(f"gate false rejects on real shared records: {n_bad}/{n_all} = {n_bad / n_all:.4f} {names}")


if __name__ == "__main__":
    main()
