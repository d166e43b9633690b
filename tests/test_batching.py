"""Automatic batching and performance hints, on a BERT-style encoder and a batch-1 CNN export.

Concurrent callers' requests are gathered into batched runs; each caller gets
exactly what a lone run of its request gives. Hints pick scheduler, streams
and batching, and explicit arguments win over them.
"""
import threading

import numpy as np
import pytest

import tilerun
from tilerun.bert_like import bert_like

from test_shapes import baked_batch_model


def _ids(rng, seq):
    return [rng.integers(0, 1000, (1, seq)).astype(np.int64), np.ones((1, seq), np.int64)]


def _concurrently(fn, n):
    out = [None] * n
    errors = []

    def one(k):
        try:
            out[k] = fn(k)
        except BaseException as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return out


@pytest.mark.parametrize("scheduler", ["single_stream", "multi_stream"])
def test_concurrent_requests_are_batched_and_answered_each_alone(scheduler):
    model = bert_like(layers=1, hidden=32, heads=2)
    rng = np.random.default_rng(0)
    requests = [_ids(rng, 16 if k % 3 else 24) for k in range(12)]  # two item shapes, interleaved
    with tilerun.compile_model(model, scheduler=scheduler) as alone:
        want = [alone.run(r)[0] for r in requests]
    with tilerun.compile_model(model, scheduler=scheduler, auto_batch=4, batch_timeout_ms=50) as eng:
        assert eng.config.auto_batch == 4
        got = _concurrently(lambda k: eng.run(requests[k])[0], len(requests))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        assert eng._batcher.runs < len(requests)  # some requests shared a run
        futures = [eng.run_async(r) for r in requests[:4]]
        for f, w in zip(futures, want[:4]):
            np.testing.assert_allclose(f.result()[0], w, rtol=1e-5, atol=1e-6)


def test_batch_one_export_batches_through_its_baked_reshape():
    model = baked_batch_model()
    x = np.random.default_rng(1).standard_normal((6, 3, 8, 8)).astype(np.float32)
    with tilerun.compile_model(model) as one:
        want = [one.run([x[k:k + 1]])[0] for k in range(6)]
    with tilerun.compile_model(model, auto_batch=3, batch_timeout_ms=50) as eng:
        got = _concurrently(lambda k: eng.run([x[k:k + 1]])[0], 6)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_hints_choose_and_explicit_arguments_win():
    model = baked_batch_model()
    with tilerun.compile_model(model, hint="latency") as eng:
        assert (eng.config.scheduler, eng.config.num_streams, eng.config.auto_batch) == ("single_stream", 1, None)
    with tilerun.compile_model(model, hint="throughput") as eng:
        cores = eng.num_cores
        assert (eng.config.scheduler, eng.config.num_streams) == ("multi_stream", cores)
        assert eng.config.stream_range == (1, cores) and eng.config.optimal_batch_size == 1
    with tilerun.compile_model(model, hint="throughput", num_requests=4 * eng.num_cores) as eng:
        assert eng.config.auto_batch == 4 and eng.config.optimal_batch_size == 4
        assert eng.input_shapes == [(4, 3, 8, 8)]
    with tilerun.compile_model(model, hint="throughput", scheduler="single_stream") as eng:
        assert eng.config.scheduler == "single_stream" and eng.config.auto_batch is None


def test_bad_hint_and_batching_arguments():
    model = baked_batch_model()
    with pytest.raises(tilerun.ArgumentError, match="hint must be one of"):
        tilerun.compile_model(model, hint="fast")
    with pytest.raises(tilerun.ArgumentError, match="auto_batch must be a positive integer"):
        tilerun.compile_model(model, auto_batch=0)
    with pytest.raises(tilerun.ArgumentError, match="batch_timeout_ms must be a number"):
        tilerun.compile_model(model, auto_batch=2, batch_timeout_ms=-1)
    with pytest.raises(tilerun.ArgumentError, match="auto_batch needs every input to lead with the batch"):
        tilerun.compile_model(model, auto_batch=2, input_shapes={"x": [1, 3, 8, 8]})
