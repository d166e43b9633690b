"""Bounded load test of ``tilerun serve`` on loopback, against the same engine in-process.

Starts ``tilerun serve MODEL`` as a subprocess (multi_stream, loopback, free
ports), warms it up, then sends ``--requests`` inference requests from
``--concurrency`` clients (keep-alive connections in ``--processes`` client
processes, so the clients' own GIL is not the limit), REST with the binary
tensor data extension or gRPC. Every answer is checked byte for byte against
the in-process engine's output. The requests are split into ``--rounds``,
each preceded by an in-process ``multi_stream`` phase of the same model with
as many caller threads (the machine's load drifts; alternating phases
share the drift). Reports errors, lost requests (sent minus answered, and the
server's own count), the server's RSS before and after, throughput and
p50/p99 latency of both, the per-round and median ratio, and the CPU time
per request of the server, the clients and the in-process engine (the
clients share the cores with the server).

    python benchmarks/serve_load.py --requests 20000 --concurrency 32           # squeezenet, REST binary
    python benchmarks/serve_load.py --requests 2000 --protocol grpc --json out.json

Needs the serve extra (``pip install -e '.[serve]'``). Every loop is bounded
by its request count and by ``--timeout`` seconds.
"""
import argparse
import json
import multiprocessing
import os
import pathlib
import re
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import numpy as np  # noqa: E402
import psutil  # noqa: E402


def _percentiles(lat):
    lat = sorted(lat)
    if not lat:
        return float("nan"), float("nan")
    return lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3


# -- clients (run in child processes) ------------------------------------------------------------

def _rest_caller(port, model, body, headers, expected):
    import http.client
    conn = [http.client.HTTPConnection("127.0.0.1", port, timeout=120)]

    def call():
        try:
            conn[0].request("POST", f"/v2/models/{model}/infer", body, headers)
            r = conn[0].getresponse()
            data = r.read()
        except OSError as e:
            conn[0].close()
            conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            return f"{type(e).__name__}: {e}"
        if r.status != 200:
            return f"{r.status}: {data[:200]!r}"
        n = int(r.getheader("Inference-Header-Content-Length"))
        return None if data[n:] == expected else "output differs from the in-process engine"
    return call


def _grpc_caller(port, model, x_name, x, expected):
    import grpc

    from tilerun.serve.v2_proto import classes
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", -1)])
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                request_serializer=classes["ModelInferRequest"].SerializeToString,
                                response_deserializer=classes["ModelInferResponse"].FromString)
    req = classes["ModelInferRequest"](model_name=model)
    req.inputs.add(name=x_name, datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.tobytes())

    def call():
        try:
            resp = infer(req, timeout=120)
        except grpc.RpcError as e:
            return f"{e.code().name}: {e.details()}"
        return None if resp.raw_output_contents[0] == expected else "output differs from the in-process engine"
    return call


def _client_process(spec):
    """Send ``spec['count']`` requests from ``spec['threads']`` threads; (latencies, errors, t_start, t_end)."""
    x = np.frombuffer(spec["x"], np.float32).reshape(spec["shape"])
    lock, left, lat, errors = threading.Lock(), [spec["count"]], [], []
    deadline = time.monotonic() + spec["timeout"]

    def worker():
        if spec["protocol"] == "rest":
            head = json.dumps({"inputs": [{"name": spec["input"], "shape": list(x.shape), "datatype": "FP32",
                                           "parameters": {"binary_data_size": x.nbytes}}],
                               "parameters": {"binary_data_output": True}}).encode()
            call = _rest_caller(spec["port"], spec["model"], head + x.tobytes(),
                                {"Inference-Header-Content-Length": str(len(head))}, spec["expected"])
        else:
            call = _grpc_caller(spec["port"], spec["model"], spec["input"], x, spec["expected"])
        while time.monotonic() < deadline:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            t = time.perf_counter()
            err = call()
            dt = time.perf_counter() - t
            with lock:
                lat.append(dt)
                if err:
                    errors.append(err)
    threads = [threading.Thread(target=worker) for _ in range(spec["threads"])]
    time.sleep(max(0.0, spec["start_at"] - time.time()))  # every client process starts together
    c0, t0 = os.times(), time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c1 = os.times()
    return lat, errors, t0, time.time(), left[0], c1.user + c1.system - c0.user - c0.system


# -- in-process baseline ---------------------------------------------------------------------------

def in_process(eng, x, requests, callers, timeout):
    """(req/s, p50 ms, p99 ms) of ``requests`` ``eng.run`` calls from ``callers`` threads."""
    lock, left, lat = threading.Lock(), [requests], []
    deadline = time.monotonic() + timeout

    def worker():
        while time.monotonic() < deadline:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            t = time.perf_counter()
            eng.run([x])
            dt = time.perf_counter() - t
            with lock:
                lat.append(dt)
    threads = [threading.Thread(target=worker) for _ in range(callers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (len(lat) / (time.perf_counter() - t0), *_percentiles(lat))


# -- the server ------------------------------------------------------------------------------------

def start_server(model, extra, timeout):
    cmd = [sys.executable, "-m", "tilerun.cli", "serve", model, "--port", "0", "--grpc-port", "0", *extra]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        lines.append(line)
        if '"event": "serving"' in line:
            ev = json.loads(line)
            threading.Thread(target=lambda: [lines.append(x) for x in proc.stderr], daemon=True).start()
            return proc, ev["http_port"], ev["grpc_port"], lines
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit("server did not start:\n" + "".join(lines[-20:]))


def server_count(port, model):
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        rf'^tilerun_requests_total{{code="(\d+)",model="{model}",protocol="\w+"}} (\S+)', text, re.M)}


def load(args, pool, port, x, input_name, expected, requests, concurrency, processes):
    """Latencies, errors, wall seconds, unsent count and client CPU seconds of one load phase."""
    per = [requests // processes + (i < requests % processes) for i in range(processes)]
    threads = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    start_at = time.time() + 0.5
    specs = [dict(port=port, protocol=args.protocol, model=args.name, input=input_name, x=x.tobytes(),
                  shape=x.shape, expected=expected, count=c, threads=t, timeout=args.timeout, start_at=start_at)
             for c, t in zip(per, threads)]
    results = pool.map(_client_process, specs, chunksize=1)
    lat = [v for r in results for v in r[0]]
    errors = [e for r in results for e in r[1]]
    wall = max(r[3] for r in results) - min(r[2] for r in results)
    return lat, errors, wall, sum(r[4] for r in results), sum(r[5] for r in results)


def _cpu(proc):
    t = proc.cpu_times()
    return t.user + t.system


def run_rounds(args, pool, eng, x, expected, server, port):
    """Alternate in-process and server phases; per-round (server req/s, in-process req/s) and totals."""
    lat, errors, unsent, rounds, cpu = [], [], 0, [], dict(server=0.0, client=0.0, in_process=0.0)
    me = psutil.Process()
    for r in range(args.rounds):
        n = args.requests // args.rounds + (r < args.requests % args.rounds)
        c0 = _cpu(me)
        base = in_process(eng, x, args.baseline_requests, args.concurrency, args.timeout)
        cpu["in_process"] += _cpu(me) - c0
        s0 = _cpu(server)
        got, errs, wall, left, client_cpu = load(args, pool, port, x, eng.input_names[0], expected.tobytes(), n,
                                                 args.concurrency, args.processes)
        cpu["server"] += _cpu(server) - s0
        cpu["client"] += client_cpu
        lat += got
        errors += errs
        unsent += left
        rounds.append((len(got) / wall, base[0], base[1], base[2]))
        print(f"round {r + 1}/{args.rounds}: server {rounds[-1][0]:.1f} req/s, in-process {base[0]:.1f} req/s, "
              f"ratio {rounds[-1][0] / base[0]:.3f}, server RSS {server.memory_info().rss / 2**20:.1f} MB",
              flush=True)
    return lat, errors, unsent, rounds, cpu


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="squeezenet")
    p.add_argument("--requests", type=int, default=20000, help="requests sent to the server, over all rounds")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--processes", type=int, default=4, help="client processes the connections are spread over")
    p.add_argument("--protocol", choices=["rest", "grpc"], default="rest")
    p.add_argument("--rounds", type=int, default=5, help="alternations of in-process and server phases")
    p.add_argument("--baseline-requests", type=int, default=1000, help="in-process requests per round")
    p.add_argument("--timeout", type=float, default=1800, help="bound on each phase, seconds")
    p.add_argument("--server-args", default="", help="extra `tilerun serve` flags, e.g. '--num-streams 4'")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.processes = max(1, min(args.processes, args.concurrency))

    import tilerun
    from tilerun.commands.common import load_model_arg
    from tilerun.serve import parse_model_arg
    args.name, path = parse_model_arg(args.model)
    eng = tilerun.compile_model(load_model_arg(path), scheduler="multi_stream")
    x = np.random.default_rng(0).standard_normal(eng.input_shapes[0]).astype(np.float32)
    expected = eng.run([x])[0]

    proc, http_port, grpc_port, lines = start_server(args.model, args.server_args.split(), args.timeout)
    server = psutil.Process(proc.pid)
    port = http_port if args.protocol == "rest" else grpc_port
    warm = min(200, args.requests)
    pool = multiprocessing.get_context("spawn").Pool(args.processes)  # started once: no spawn inside a phase
    try:
        load(args, pool, port, x, eng.input_names[0], expected.tobytes(), warm, min(4, args.concurrency), 1)
        rss_before = server.memory_info().rss
        lat, errors, unsent, rounds, cpu = run_rounds(args, pool, eng, x, expected, server, port)
        rss_after = server.memory_info().rss
        counted = server_count(http_port, args.name)
    finally:
        pool.terminate()
        proc.terminate()
        code = proc.wait(120)
    eng.close()

    p50, p99 = _percentiles(lat)
    ratios = [s / b for s, b, _, _ in rounds]
    n_base = args.rounds * args.baseline_requests
    report = dict(model=args.name, protocol=args.protocol, requests=args.requests, concurrency=args.concurrency,
                  client_processes=args.processes, rounds=args.rounds, answered=len(lat), errors=len(errors),
                  first_errors=errors[:3], lost=args.requests - len(lat) - unsent, unsent=unsent,
                  server_counted_200=counted.get("200", 0) - warm,
                  server_rss_mb_before=round(rss_before / 2**20, 1), server_rss_mb_after=round(rss_after / 2**20, 1),
                  server_req_s_median=round(statistics.median(s for s, _, _, _ in rounds), 2),
                  server_p50_ms=round(p50, 2), server_p99_ms=round(p99, 2),
                  in_process_req_s_median=round(statistics.median(b for _, b, _, _ in rounds), 2),
                  in_process_p50_ms_median=round(statistics.median(r[2] for r in rounds), 2),
                  in_process_p99_ms_median=round(statistics.median(r[3] for r in rounds), 2),
                  ratio_per_round=[round(r, 3) for r in ratios], ratio_median=round(statistics.median(ratios), 3),
                  server_cpu_ms_per_request=round(1e3 * cpu["server"] / max(1, len(lat)), 2),
                  client_cpu_ms_per_request=round(1e3 * cpu["client"] / max(1, len(lat)), 2),
                  in_process_cpu_ms_per_request=round(1e3 * cpu["in_process"] / n_base, 2),
                  server_exit_code=code, cores=os.cpu_count(), load_avg=[round(v, 2) for v in os.getloadavg()])
    for k, v in report.items():
        print(f"{k:32s} {v}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if not errors and report["lost"] == 0 and not unsent else 1


if __name__ == "__main__":
    sys.exit(main())
