"""The three scheduling modes on real engines: concurrency, isolation, async, tracing, idle, close.

Tile boundaries are fixed at compile time, whoever runs a tile, so every
output must be bit-identical to the same input run alone on the same engine.
"""
import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest
from onnx import helper

import tilerun
from tilerun.scheduler import Topology, topology
from oracle import make_model, reference_outputs

F = np.float32
SCHEDULERS = ["single_stream", "multi_stream", "elastic"]


def small_convnet(seed=0):
    """Conv-Relu-Conv(+residual)-Relu-GlobalAveragePool-Gemm: a few ops, each split into tiles."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((16, 3, 3, 3)) * 0.3).astype(F)
    w2 = (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(F)
    wf = (rng.standard_normal((10, 16)) * 0.3).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "b"], ["d"]),
             helper.make_node("Relu", ["d"], ["e"]),
             helper.make_node("GlobalAveragePool", ["e"], ["f"]),
             helper.make_node("Flatten", ["f"], ["g"]),
             helper.make_node("Gemm", ["g", "wf"], ["y"], transB=1)]
    return make_model(nodes, [("x", F, [1, 3, 24, 24])], [("y", F, None)],
                      [("w1", w1), ("w2", w2), ("wf", wf)])


def two_domains():
    """A virtual topology: this machine's first two cores as two one-core domains."""
    cores = topology.detect().cores
    if len(cores) < 2:
        pytest.skip("needs two usable cores")
    return Topology(cores[:2], ((cores[0],), (cores[1],)))


def compile_for(mode, **kw):
    extra = {"topology": two_domains()} if mode == "elastic" else {}
    return tilerun.compile_model(small_convnet(), scheduler=mode, **extra, **kw)


@pytest.mark.parametrize("api", ["run", "run_async"])
@pytest.mark.parametrize("mode", SCHEDULERS)
def test_sixteen_threads_bit_identical_to_solo(mode, api):
    """16 threads x 100 requests, distinct inputs: each output equals that input run alone."""
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((1, 3, 24, 24)).astype(F) for _ in range(64)]
    with compile_for(mode) as eng:
        solo = [eng.run([x])[0] for x in inputs]
        mismatches, errors = [], []

        def caller(t):
            try:
                for i in range(100):
                    k = (t * 100 + i) % len(inputs)
                    if api == "run":
                        out = eng.run([inputs[k]])[0]
                    else:
                        out = eng.run_async([inputs[k]]).result(timeout=60)[0]
                    if not np.array_equal(out, solo[k]):
                        mismatches.append((t, i))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=caller, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 240
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0))
        assert not any(t.is_alive() for t in threads), "requests did not finish: deadlock"
        assert not errors, repr(errors[0])
        assert not mismatches, f"{len(mismatches)} outputs differ from the solo run"
        assert eng.num_streams == {"single_stream": 1, "multi_stream": len(eng.topology.cores), "elastic": 2}[mode]


def test_multi_stream_matches_reference_and_single_stream():
    x = np.random.default_rng(2).standard_normal((1, 3, 24, 24)).astype(F)
    from oracle import reference_outputs
    ref = reference_outputs(small_convnet(), {"x": x})[0]
    with compile_for("single_stream") as a, compile_for("multi_stream", num_streams=3) as b:
        np.testing.assert_allclose(b.run([x])[0], ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(a.run([x])[0], b.run([x])[0])


def test_request_widths_follow_the_workers_a_request_can_have():
    """Alone a multi_stream request is tiled for every worker, beside others for its share; elastic for its domain;
    single_stream for every worker and, as its second plan, for one."""
    from tilerun.scheduler.policies import Scheduler, request_widths
    four = Topology((0, 1, 2, 3), ((0, 1, 2, 3),))
    two_l3 = Topology((0, 1, 2, 3, 4, 5), ((0, 1, 2, 3), (4, 5)))
    assert request_widths(Scheduler.single_stream, four, 1) == (4, 1)
    assert request_widths(Scheduler.multi_stream, four, 2) == (4, 2)
    assert request_widths(Scheduler.multi_stream, four, 8) == (4, 1)
    assert request_widths(Scheduler.multi_stream, four, 2, work_stealing=False) == (2, 2)
    assert request_widths(Scheduler.elastic, two_l3, 2) == (4, 4)
    assert request_widths(Scheduler.elastic, two_l3, 1) == (4, 4)


@pytest.mark.parametrize("model", ["small_convnet", "mobilenet_v3_small"])
def test_a_request_beside_another_runs_its_share_and_the_same_bits(model):
    """multi_stream on 2 cores: a lone request splits ops over both workers; one that starts while another
    request holds the other slot runs the tiles a 1-core engine runs, all on its own worker, with the same bits."""
    from tilerun.models import mobilenet_v3_small
    cores = topology.detect().cores
    if len(cores) < 2:
        pytest.skip("needs two usable cores")
    proto = small_convnet() if model == "small_convnet" else mobilenet_v3_small(seed=0, size=96)
    x = np.random.default_rng(4).standard_normal(
        [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]).astype(F)
    with tilerun.compile_model(proto, scheduler="multi_stream", num_streams=2, num_cores=2) as eng:
        alone = eng.trace([x])
        held = eng._runtime.acquire()  # another request's slot: slot 0, worker 0's own
        try:
            beside = eng.trace([x])  # in slot 1, worker 1's own
        finally:
            eng._runtime.release(held)
    with tilerun.compile_model(proto, num_cores=1) as one:
        one_core = [r.n_tiles for r in one.plan.rows]
    assert sum(r.n_tiles for r in alone.rows) > sum(one_core), "a lone request should split ops over both workers"
    assert [r.n_tiles for r in beside.rows] == one_core
    assert len(beside.events) == sum(one_core)
    assert set(beside.events[:, 0].tolist()) == {1}, "worker 0, whose own slot is taken, must not help"
    np.testing.assert_array_equal(beside.outputs[0], alone.outputs[0])


def _choose(choice, times, n):
    """Run ``n`` requests through ``choice``; ``times[plan]`` gives each one's time. Returns the plans picked."""
    picked = []
    for _ in range(n):
        p = choice.pick()
        choice.record(p, times[p])
        picked.append(("split", "solo")[p])
    return picked


def test_tiling_choice_follows_the_faster_plan_and_probes_the_other():
    from tilerun.scheduler import tiling_choice as tc
    c = tc.TilingChoice()
    # Split fast and steady: one-worker requests every PROBE_EVERY-th until KNOWN, then every PROBE_RARELY-th.
    got = _choose(c, {0: 1.0, 1: 1.6}, 2 * tc.PROBE_RARELY)
    calibrated = tc.KNOWN * tc.PROBE_EVERY
    assert [i + 1 for i, g in enumerate(got) if g == "solo"] == (
        [tc.PROBE_EVERY * (k + 1) for k in range(tc.KNOWN)] + [tc.PROBE_RARELY, 2 * tc.PROBE_RARELY])
    assert calibrated < tc.PROBE_RARELY
    # A lone slow split request is a hiccup, not a slowdown: nothing changes.
    c.record(tc.SPLIT, 9.0)
    got = _choose(c, {0: 1.0, 1: 1.6}, tc.PROBE_RARELY // 2)
    assert "solo" not in got
    # The host slows split requests past one worker's: once the split median shows it, one worker serves,
    # the split plan probed every PROBE_EVERY-th request.
    got = _choose(c, {0: 2.1, 1: 1.6}, 4 * tc.PROBE_EVERY)
    first = got.index("solo")
    assert first <= tc.WINDOW // 2 + 1
    assert abs(got[first:].count("split") - len(got[first:]) / tc.PROBE_EVERY) <= 1
    # The host recovers: the split probes see it and split requests take over again.
    got = _choose(c, {0: 1.0, 1: 1.6}, 5 * tc.PROBE_EVERY)
    back = len(got) - got[::-1].index("solo")
    assert back <= (tc.WINDOW // 2 + 2) * tc.PROBE_EVERY and "solo" not in got[back:]


def test_tiling_choice_finds_a_faster_single_worker_and_leaves_a_slower_one_alone():
    from tilerun.scheduler import tiling_choice as tc
    # A new engine in a slow phase (MobileNetV3-small split 2.1 ms, one worker 1.7): the first probe finds the
    # one worker faster, and it is kept.
    c = tc.TilingChoice()
    got = _choose(c, {0: 2.1, 1: 1.7}, 4 * tc.PROBE_EVERY)
    assert got[tc.PROBE_EVERY - 1] == "solo" and got[tc.PROBE_EVERY:].count("split") <= 3
    # Known to be twice as slow (ResNet-50 on one core): a slowed split plan does not make it probe more.
    c = tc.TilingChoice()
    _choose(c, {0: 33.0, 1: 63.0}, tc.PROBE_RARELY)
    got = _choose(c, {0: 40.0, 1: 63.0}, tc.PROBE_RARELY)
    assert got.count("solo") == 1
    # A model faster on one worker than split (tiny ops): found at the first rare probe, then kept.
    c = tc.TilingChoice()
    got = _choose(c, {0: 0.05, 1: 0.03}, 2 * tc.PROBE_RARELY)
    assert got[tc.PROBE_RARELY:].count("solo") >= tc.PROBE_RARELY * (1 - 1 / tc.PROBE_EVERY)


@pytest.mark.parametrize("model", ["small_convnet", "mobilenet_v3_small"])
def test_single_stream_request_on_one_worker_runs_the_one_core_tiles_and_the_same_bits(model):
    """A 2-core single_stream engine keeps a plan tiled for one worker: a request the choice sends there runs
    the tiles a 1-core engine runs, every one on one worker, with the bits of a request split over both."""
    from tilerun.models import mobilenet_v3_small
    from tilerun.scheduler.tiling_choice import SOLO, WINDOW
    if len(topology.detect().cores) < 2:
        pytest.skip("needs two usable cores")
    proto = small_convnet() if model == "small_convnet" else mobilenet_v3_small(seed=0, size=96)
    x = np.random.default_rng(5).standard_normal(
        [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]).astype(F)
    with tilerun.compile_model(proto, num_cores=1) as one:
        one_core = [r.n_tiles for r in one.plan.rows]
    with tilerun.compile_model(proto, num_cores=2) as eng:
        split = eng.trace([x])
        for _ in range(WINDOW):
            eng._static.choice.record(SOLO, 1)  # as if one worker had been measured faster
        solo = eng.trace([x])
    assert sum(r.n_tiles for r in split.rows) > sum(one_core)
    assert len(set(split.events[:, 0].tolist())) == 2
    assert [r.n_tiles for r in solo.rows] == one_core
    assert len(set(solo.events[:, 0].tolist())) == 1, "a request tiled for one worker must run on one"
    np.testing.assert_array_equal(solo.outputs[0], split.outputs[0])
    np.testing.assert_allclose(solo.outputs[0], reference_outputs(proto, {proto.graph.input[0].name: x},
                                                                   use_ort=True)[0], rtol=1e-4, atol=1e-4)


def test_elastic_one_request_per_domain_and_both_busy():
    """Traced requests on two one-core domains: no two overlap in a domain, tiles never cross domains."""
    x = np.random.default_rng(3).standard_normal((1, 3, 24, 24)).astype(F)
    with tilerun.compile_model(small_convnet(), num_cores=1) as one:
        one_core = [r.n_tiles for r in one.plan.rows]
    with compile_for("elastic") as eng:
        assert [r.n_tiles for r in eng.plan.rows] == one_core, "one-core domains tile as a 1-core engine"
        domain_of = {w: d for w, core in enumerate(eng.topology.cores)
                     for d, cores in enumerate(eng.topology.domains) if core in cores}
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            traces = list(ex.map(lambda _: eng.trace([x]), range(120)))
    spans = {0: [], 1: []}
    for tr in traces:
        assert len(tr.events), "a traced request recorded no tiles"
        domains = {domain_of[int(w)] for w in tr.events[:, 0]}
        assert len(domains) == 1, f"one request ran in domains {domains}"
        ends = tr.start_ns + tr.events[:, 4].max()
        spans[domains.pop()].append((tr.start_ns, ends))
    assert spans[0] and spans[1], "both domains must serve requests under load"
    for d, s in spans.items():
        s.sort()
        for (a0, a1), (b0, b1) in zip(s, s[1:]):
            assert b0 >= a1, f"two requests overlapped in domain {d}"
    overlapping = sum(1 for a0, a1 in spans[0] for b0, b1 in spans[1] if a0 < b1 and b0 < a1)
    assert overlapping > 0, "the two domains never ran requests at the same time"


def test_elastic_rejects_more_streams_than_domains():
    with pytest.raises(tilerun.ArgumentError, match="num_streams for elastic must be between 1 and 2"):
        tilerun.compile_model(small_convnet(), scheduler="elastic", num_streams=3, topology=two_domains())


def test_trace_covers_every_tile_and_exports_chrome_json(tmp_path):
    x = np.random.default_rng(4).standard_normal((1, 3, 24, 24)).astype(F)
    with compile_for("single_stream") as eng:
        tr = eng.trace([x], repeat=2)
        np.testing.assert_array_equal(tr.outputs[0], eng.run([x])[0])
    assert len(tr.events) == sum(r.n_tiles for r in eng.plan.rows)
    ops = tr.per_op()
    assert [o["tiles"] for o in ops] == [r.n_tiles for r in eng.plan.rows]
    # A worker runs one tile at a time: an op's busy time fits in its span on the workers it used.
    assert all(o["busy_ms"] <= o["span_ms"] * len(o["workers"]) + 1e-9 for o in ops)
    assert (tr.events[:, 4] >= tr.events[:, 3]).all()
    import json
    doc = tr.to_chrome(tmp_path / "t.json")
    loaded = json.loads((tmp_path / "t.json").read_text())
    assert loaded == json.loads(json.dumps(doc))
    assert sum(1 for e in loaded["traceEvents"] if e["ph"] == "X") == len(tr.events)


def test_asyncio_await():
    x = np.random.default_rng(5).standard_normal((1, 3, 24, 24)).astype(F)
    with compile_for("multi_stream", num_streams=2) as eng:
        want = eng.run([x])[0]

        async def main():
            return await asyncio.gather(*(eng.arun([x]) for _ in range(8)))

        for out in asyncio.run(main()):
            np.testing.assert_array_equal(out[0], want)


def test_idle_engine_uses_no_cpu():
    x = np.random.default_rng(6).standard_normal((1, 3, 24, 24)).astype(F)
    with compile_for("multi_stream") as eng:
        for _ in range(50):
            eng.run([x])
        t0 = time.process_time()
        time.sleep(2.0)
        used = time.process_time() - t0
    assert used < 0.04, f"an idle engine used {used:.3f} s of CPU in 2 s (limit: 2% of a core)"


def test_close_finishes_in_flight_and_fails_later_requests():
    x = np.random.default_rng(7).standard_normal((1, 3, 24, 24)).astype(F)
    eng = compile_for("multi_stream", num_streams=2)
    want = eng.run([x])[0]
    futures = [eng.run_async([x]) for _ in range(40)]
    time.sleep(0.01)
    assert eng.close(timeout=60), "close hung"
    done = failed = 0
    for f in futures:
        try:
            np.testing.assert_array_equal(f.result(timeout=10)[0], want)
            done += 1
        except tilerun.RequestError:
            failed += 1
    assert done + failed == 40 and done >= 1
    with pytest.raises(tilerun.RequestError, match="closed"):
        eng.run([x])
    with pytest.raises(tilerun.RequestError, match="closed"):
        eng.run_async([x])


def gather_model():
    """Relu then Gather with run-time indices: an out-of-range index makes the kernel fail the request."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Gather", ["r", "i"], ["y"], axis=0)]
    return make_model(nodes, [("x", F, (64, 8)), ("i", np.int64, (4,))], [("y", F, None)])


@pytest.mark.parametrize("mode", SCHEDULERS)
def test_failing_request_fails_only_its_future(mode):
    x = np.random.default_rng(8).standard_normal((64, 8)).astype(F)
    good, bad = np.array([0, 5, 63, -1], np.int64), np.array([0, 64, 1, 2], np.int64)
    extra = {"topology": two_domains()} if mode == "elastic" else {}
    with tilerun.compile_model(gather_model(), scheduler=mode, **extra) as eng:
        futures = [eng.run_async([x, bad if k % 3 == 1 else good]) for k in range(30)]
        for k, f in enumerate(futures):
            if k % 3 == 1:
                with pytest.raises(tilerun.RequestError, match="Gather"):
                    f.result(timeout=30)
            else:
                np.testing.assert_array_equal(f.result(timeout=30)[0], np.maximum(x, 0)[good])
        with pytest.raises(tilerun.RequestError):
            eng.run([x, bad])
        np.testing.assert_array_equal(eng.run([x, good])[0], np.maximum(x, 0)[good])


def _worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith("tilerun-worker")]


def test_one_worker_one_slot_engine_runs_requests_on_the_callers_thread():
    # No worker thread to wake and be woken by: run, run_async and a failing request all run on the
    # calling thread, with the tiles and results of the 1-core plan. Two slots on one core keep a worker.
    x = np.random.default_rng(9).standard_normal((1, 3, 24, 24)).astype(F)
    before = len(_worker_threads())
    with tilerun.compile_model(small_convnet(), num_cores=1) as eng:
        assert len(_worker_threads()) == before
        want = reference_outputs(small_convnet(), {"x": x})[0]
        np.testing.assert_allclose(eng.run([x])[0], want, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(eng.run_async([x]).result(timeout=30)[0], eng.run([x])[0])
        trace = eng.trace([x])
        assert len(trace.events) == sum(r.n_tiles for r in eng.plan.rows)
        assert set(trace.events[:, 0]) == {0}
    with tilerun.compile_model(gather_model(), num_cores=1) as eng:
        xg = np.ones((64, 8), F)
        with pytest.raises(tilerun.RequestError, match="Gather"):
            eng.run([xg, np.array([0, 64, 1, 2], np.int64)])
        np.testing.assert_array_equal(eng.run([xg, np.array([1, 2, 3, 4], np.int64)])[0], xg[1:5])
    with tilerun.compile_model(small_convnet(), num_cores=1, scheduler="multi_stream", num_streams=2) as eng:
        assert len(_worker_threads()) == before + 1
        np.testing.assert_allclose(eng.run([x])[0], want, rtol=1e-4, atol=1e-4)
    assert len(_worker_threads()) == before


def test_engines_on_fewer_cores_take_the_least_used_cores():
    # Two 1-core engines alive together get two different cores (where their workers are pinned; a 1-core
    # single-stream engine runs on its caller's thread), and the second still computes what the first does;
    # a core freed by a closed engine is taken again.
    cores = topology.detect().cores
    if len(cores) < 2:
        pytest.skip("needs two usable cores")
    x = np.random.default_rng(0).standard_normal((1, 3, 24, 24)).astype(F)
    with tilerun.compile_model(small_convnet(), num_cores=1) as a:
        with tilerun.compile_model(small_convnet(), num_cores=1) as b:
            assert a.topology.cores != b.topology.cores
            np.testing.assert_array_equal(a.run([x])[0], b.run([x])[0])
            first_free = a.topology.cores
        with tilerun.compile_model(small_convnet(), num_cores=1) as c:
            assert c.topology.cores != first_free  # b's core is free again: c does not share a's
    assert Topology(cores[:2], ((cores[0], cores[1]),)).limit(1, {cores[0]: 1}).cores == (cores[1],)
