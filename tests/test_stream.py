"""The batch-level corpus stream yields exactly the windows of the per-example `datasets` pipeline, on corpora built
from real PTB-XL and BIDMC records: same multiset, each window on exactly one rank/worker, seeded order, weights."""
import hashlib
from collections import Counter

import numpy as np
import pytest
import torch

from cardiofm.data import build_mixture, collate_samples
from cardiofm.data.corpus import corpus_shards, prepare_corpus
from cardiofm.data.corpus.sources import SourceOptions
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """(PTB-XL corpus of 352 windows in 8 shards, BIDMC corpus of 480 windows in 4 shards)."""
    tmp = tmp_path_factory.mktemp("stream")
    ptb, bid = str(tmp / "ptbxl"), str(tmp / "bidmc")
    prepare_corpus("ptbxl", SourceOptions(root=str(shared_path("ptbxl"))), ptb, records_per_shard=50, progress=False)
    prepare_corpus("bidmc", SourceOptions(root=str(shared_path("bidmc"))), bid, records_per_shard=3, progress=False)
    assert len(corpus_shards(ptb)) == 8 and len(corpus_shards(bid)) == 4
    return ptb, bid


def _key(s):
    """A window's identity and content: ids, start, text, labels, vitals and a digest of the float32 signal."""
    sig = np.ascontiguousarray(s["signal"], dtype=np.float32)
    return (s["record_id"], round(float(s["start_s"]), 3), s["source"], s["subject_id"], s["text"],
            tuple(s["labels"]), tuple(np.round(np.asarray(s["vitals"], np.float64), 4)),
            tuple(np.asarray(s["channel_mask"], bool)), tuple(np.asarray(s["vitals_mask"], bool)),
            hashlib.sha1(sig.tobytes()).hexdigest())


def _windows(stream):
    return Counter(_key(s) for s in stream)


@pytest.mark.parametrize("which", [0, 1])
def test_same_multiset_of_windows_as_per_example_path(corpora, which):
    d = corpora[which]
    ref = _windows(build_mixture([d], seed=3, shuffle_buffer=64, backend="datasets"))
    fast = _windows(build_mixture([d], seed=3, shuffle_buffer=64))
    assert sum(ref.values()) == (352, 480)[which] and max(ref.values()) == 1
    assert fast == ref
    # without a shuffle buffer both read the shards in order: the very same sequence
    a = [_key(s) for s in build_mixture([d], shuffle_buffer=0, backend="datasets")]
    b = [_key(s) for s in build_mixture([d], shuffle_buffer=0)]
    assert a == b


def test_samples_have_the_pipeline_types(corpora):
    s = next(iter(build_mixture([corpora[0]], seed=0, shuffle_buffer=16)))
    assert s["signal"].dtype == np.float32 and s["signal"].shape == (13, 1000) and s["signal"].flags.writeable
    assert s["channel_mask"].dtype == bool and s["vitals"].dtype == np.float32 and isinstance(s["channels"], list)
    assert isinstance(s["labels"], list) and s["text"] and isinstance(s["start_s"], float)


@pytest.mark.parametrize("world", [2, 3])  # 2 divides both shard counts (whole files), 3 does not (every 3rd row)
def test_each_window_on_exactly_one_rank(corpora, world):
    ptb, bid = corpora
    for d in corpora:
        whole = _windows(build_mixture([d], shuffle_buffer=0))
        parts = [_windows(build_mixture([d], seed=1, shuffle_buffer=32, rank=r, world_size=world))
                 for r in range(world)]
        assert sum(parts, Counter()) == whole and all(parts)
        sizes = [sum(p.values()) for p in parts]
        assert max(sizes) - min(sizes) <= (100 if world == 2 else 1)  # whole files, or rows dealt round-robin


def test_dataloader_workers_split_the_stream(corpora):
    stream = build_mixture([corpora[1]], seed=0, shuffle_buffer=64)
    loader = torch.utils.data.DataLoader(stream.batches(32, drop_last=False), batch_size=None, num_workers=2)
    rows = sum(b["signals"].shape[0] for b in loader)
    assert rows == 480  # two workers, each its own half: nothing twice, nothing lost
    # background threads instead of processes: the same rows, in a seeded (round-robin) order
    ref = torch.cat([b["signals"] for b in stream.batches(32, drop_last=False)])
    runs = [torch.cat([b["signals"] for b in stream.batches(32, drop_last=False, threads=2)]) for _ in range(2)]
    assert torch.equal(runs[0], runs[1]) and runs[0].shape == ref.shape == (480, 13, 1000)
    as_set = lambda x: sorted(hashlib.sha1(r.numpy().tobytes()).hexdigest() for r in x)
    assert as_set(runs[0]) == as_set(ref)
    early = iter(stream.batches(32, threads=2))
    next(early)
    early.close()  # a consumer that stops early does not leave threads blocked


def test_seeded_order_and_weights(corpora):
    ptb, bid = corpora
    def order(seed):
        return [s["record_id"] + str(s["start_s"]) for s in build_mixture([bid], seed=seed, shuffle_buffer=64)]

    assert order(5) == order(5) and order(5) != order(6)
    assert order(5) != [s["record_id"] + str(s["start_s"]) for s in build_mixture([bid], shuffle_buffer=0)]
    mix = [s["source"] for s in build_mixture([ptb, bid], weights=[3, 1], seed=0, shuffle_buffer=64)]
    head = Counter(mix[:400])
    assert 0.65 < head["ptbxl"] / 400 < 0.85
    # all_exhausted: every PTB-XL window appears at least once, the source that ran out last exactly once
    full = Counter(_key(s) for s in build_mixture([ptb, bid], weights=[3, 1], seed=0, shuffle_buffer=64))
    ptb_keys = {k for k in full if k[2] == "ptbxl"}
    assert len(ptb_keys) == 352 and len({k for k in full if k[2] == "bidmc"}) == 480
    first = list(build_mixture([ptb, bid], weights=[3, 1], seed=0, shuffle_buffer=0,
                               stopping_strategy="first_exhausted"))
    assert len(first) < 352 + 480 and Counter(_key(s) for s in first).most_common(1)[0][1] == 1


def test_collated_batches_equal_collate_samples(corpora):
    stream = build_mixture([corpora[1]], seed=2, shuffle_buffer=64)
    samples = list(stream)
    batches = list(stream.batches(50, drop_last=False, label_names=["x"]))
    assert [b["signals"].shape[0] for b in batches] == [50] * 9 + [30]
    for k, b in enumerate(batches):
        ref = collate_samples(samples[50 * k:50 * (k + 1)], label_names=["x"])
        assert set(b) == set(ref)
        for name in ref:
            assert b[name].dtype == ref[name].dtype and torch.equal(b[name], ref[name]), name
    half = next(iter(stream.batches(8, float32=False)))
    assert half["signals"].dtype == torch.float16 and torch.equal(half["signals"].float(), batches[0]["signals"][:8])
    # a mapped (augmented) stream goes through the per-sample transform, then the same collation
    scaled = next(iter(stream.map(lambda s: {**s, "signal": 2 * s["signal"]}).batches(8)))
    assert torch.allclose(scaled["signals"], 2 * batches[0]["signals"][:8])
