"""The model server (``tilerun serve``, ``tilerun.serve``): the Open Inference Protocol over REST and gRPC.

Fast tests run ``ModelServer`` in a thread on a tiny two-input model and
drive it with tritonclient (HTTP and gRPC) and plain ``http.client``:
outputs bit-identical to ``Engine.run``, every kind of bad request answered
with its status and a message naming what was expected, the server still
correct afterwards, the queue limit, metrics. Slow tests start ``tilerun
serve`` as a subprocess with two models (one of them light squeezenet) and
stop it with requests in flight. Skipped when the serve extra is missing.
"""
import concurrent.futures
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[dev,serve]'")
serve = pytest.importorskip("tilerun.serve", reason="the serve extra is not installed: pip install -e '.[dev,serve]'")

import tilerun  # noqa: E402
from serve_util import (InProcessServer, ServerProcess, binary_body, http, json_body, outputs_of,  # noqa: E402
                        tiny_inputs, tiny_model)
from tilerun.serve import ServedModel  # noqa: E402
from tilerun.serve.tensors import TensorSpec, check_declared  # noqa: E402

LIMIT = 1 << 20  # the servers' request-size limit in these tests


@pytest.fixture(scope="module")
def tiny_engine():
    with tilerun.compile_model(tiny_model(), scheduler="multi_stream") as eng:
        yield eng


@pytest.fixture(scope="module")
def server(tiny_engine):
    with InProcessServer([ServedModel("tiny", tiny_engine, max_queue=64)], max_request_bytes=LIMIT) as s:
        yield s


def _tritonclient(kind):
    return pytest.importorskip(f"tritonclient.{kind}", reason="tritonclient is a test dependency: pip install -e "
                                                             "'.[dev]'")


def _expected(engine, inputs):
    return dict(zip(engine.output_names, engine.run(inputs)))


def _assert_identical(got, expected):
    assert set(got) == set(expected)
    for name, a in expected.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape and np.array_equal(got[name], a), name


# -- health, metadata ---------------------------------------------------------------------------------

def test_health_and_metadata(server):
    assert http(server.http, "GET", "/v2/health/live")[0] == 200
    status, _, body = http(server.http, "GET", "/v2/health/ready")
    assert status == 200 and json.loads(body) == {"ready": True}
    meta = json.loads(http(server.http, "GET", "/v2")[2])
    assert meta["name"] == "tilerun" and "binary_tensor_data" in meta["extensions"]
    for path in ("/v2/models/tiny", "/v2/models/tiny/versions/1"):
        status, _, body = http(server.http, "GET", path)
        assert status == 200 and json.loads(body) == {
            "name": "tiny", "versions": ["1"], "platform": "tilerun_onnx",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 8]},
                       {"name": "idx", "datatype": "INT64", "shape": [3]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [2, 8]},
                        {"name": "g", "datatype": "FP32", "shape": [2, 3]}]}
    assert http(server.http, "GET", "/v2/models/tiny/ready")[0] == 200
    for path in ("/v2/models/nope", "/v2/models/tiny/versions/2", "/v2/models/nope/ready"):
        status, _, body = http(server.http, "GET", path)
        assert status == 404 and "error" in json.loads(body)


def test_dynamic_dims_are_minus_one():
    spec = TensorSpec.of("ids", (None, "seq", -1, 128), np.int64)
    assert spec.metadata() == {"name": "ids", "datatype": "INT64", "shape": [-1, -1, -1, 128]}
    assert check_declared(spec, "INT64", [4, 7, 1, 128]) == (4, 7, 1, 128)
    with pytest.raises(serve.BadRequest, match=r"expected shape \[-1, -1, -1, 128\], given \[4, 7, 1, 64\]"):
        check_declared(spec, "INT64", [4, 7, 1, 64])


# -- correct answers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("binary_in,binary_out", [(True, True), (True, False), (False, True), (False, False)])
def test_tritonclient_http_is_bit_identical(server, tiny_engine, binary_in, binary_out):
    th = _tritonclient("http")
    inputs = tiny_inputs(1)
    client = th.InferenceServerClient(f"127.0.0.1:{server.http}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("tiny")
    req = []
    for name, a in inputs.items():
        t = th.InferInput(name, list(a.shape), "FP32" if a.dtype == np.float32 else "INT64")
        t.set_data_from_numpy(a, binary_data=binary_in)
        req.append(t)
    outs = [th.InferRequestedOutput(n, binary_data=binary_out) for n in ("y", "g")]
    result = client.infer("tiny", req, outputs=outs, request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    _assert_identical({n: result.as_numpy(n) for n in ("y", "g")}, _expected(tiny_engine, inputs))


def test_tritonclient_grpc_is_bit_identical(server, tiny_engine):
    tg = _tritonclient("grpc")
    client = tg.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("tiny")
    meta = client.get_model_metadata("tiny", as_json=True)
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("x", "FP32", ["2", "8"]),
                                                                                 ("idx", "INT64", ["3"])]
    assert "binary_tensor_data" in client.get_server_metadata(as_json=True)["extensions"]
    for seed in range(3):
        inputs = tiny_inputs(seed)
        req = []
        for name, a in inputs.items():
            t = tg.InferInput(name, list(a.shape), "FP32" if a.dtype == np.float32 else "INT64")
            t.set_data_from_numpy(a)
            req.append(t)
        result = client.infer("tiny", req, request_id=f"g-{seed}")
        assert result.get_response().id == f"g-{seed}"
        _assert_identical({n: result.as_numpy(n) for n in ("y", "g")}, _expected(tiny_engine, inputs))
    only_g = client.infer("tiny", req, outputs=[tg.InferRequestedOutput("g")])
    assert only_g.as_numpy("y") is None and only_g.as_numpy("g") is not None


def test_plain_http_json_and_binary(server, tiny_engine):
    inputs = tiny_inputs(5)
    expected = _expected(tiny_engine, inputs)
    status, headers, body = http(server.http, "POST", "/v2/models/tiny/infer", json_body(inputs),
                                 {"Content-Type": "application/json"})
    assert status == 200 and headers["content-type"] == "application/json"
    _assert_identical(outputs_of(headers, body), expected)
    body, hdrs = binary_body(inputs)
    status, headers, answer = http(server.http, "POST", "/v2/models/tiny/versions/1/infer", body, hdrs)
    assert status == 200 and "inference-header-content-length" in headers
    _assert_identical(outputs_of(headers, answer), expected)
    status, headers, body = http(server.http, "POST", "/v2/models/tiny/infer", json_body(inputs, outputs=["g"]))
    assert status == 200 and set(outputs_of(headers, body)) == {"g"}


# -- bad requests -------------------------------------------------------------------------------------

def _json_with(**change):
    inputs = tiny_inputs()
    req = json.loads(json_body(inputs))
    for i, field, value in change.get("inputs", []):
        if value is None:
            req["inputs"][i].pop(field)
        else:
            req["inputs"][i][field] = value
    req.update(change.get("top", {}))
    return json.dumps(req).encode(), {"Content-Type": "application/json"}


def _binary_with(x_size=None, extra=b"", cut=0, header_len=None):
    x = tiny_inputs()["x"]
    head = json.dumps({"inputs": [{"name": "x", "shape": [2, 8], "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes if x_size is None else x_size}},
                                  {"name": "idx", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}]}).encode()
    body = head + x.tobytes()[:len(x.tobytes()) - cut] + extra
    return body, {"Inference-Header-Content-Length": str(len(head) if header_len is None else header_len)}


BAD_REST = {
    "wrong dtype": (_json_with(inputs=[(0, "datatype", "FP64")]), 400,
                    r"input 'x': expected datatype FP32, given 'FP64'"),
    "wrong shape": (_json_with(inputs=[(0, "shape", [2, 7]), (0, "data", [0.5] * 14)]), 400,
                    r"input 'x': expected shape \[2, 8\], given \[2, 7\]"),
    "missing input": (_json_with(inputs=[(1, "name", "x")]), 400, r"input 'x' is given twice"),
    "missing input idx": ((json.dumps({"inputs": [json.loads(json_body(tiny_inputs()))["inputs"][0]]}).encode(),
                           {}), 400, r"missing input 'idx' \(INT64 \[3\]\): model 'tiny' expects 'x'"),
    "unknown input": (_json_with(inputs=[(1, "name", "z")]), 400, r"model 'tiny' has no input 'z'"),
    "data count": (_json_with(inputs=[(0, "data", [0.5] * 15)]), 400, r"input 'x'.* 16 elements, data has 15"),
    "float for INT64": (_json_with(inputs=[(1, "data", [0.5, 1, 2])]), 400, r"input 'idx': expected INT64 data"),
    "text for FP32": (_json_with(inputs=[(0, "data", ["a"] * 16)]), 400, r"input 'x': expected FP32 data"),
    "no data": (_json_with(inputs=[(0, "data", None)]), 400, r"input 'x': expected 'data' or .*binary_data_size"),
    "unknown output": (_json_with(top={"outputs": [{"name": "nope"}]}), 400, r"model 'tiny' has no output 'nope'"),
    "malformed JSON": ((b'{"inputs": [', {}), 400, r"request is not valid JSON"),
    "not an object": ((b"[1, 2]", {}), 400, r"request must be a JSON object, given list"),
    "no inputs": ((b"{}", {}), 400, r"non-empty 'inputs' list, given nothing"),
    "bad id": (_json_with(top={"id": 7}), 400, r"'id' must be a string"),
    "binary cut short": (_binary_with(cut=10), 400, r"input 'x': binary_data_size must be a byte count within"),
    "binary size wrong for shape": (_binary_with(x_size=60, cut=4), 400,
                                    r"input 'x': expected 64 bytes of binary data for FP32 \[2, 8\], given 60"),
    "binary trailing bytes": (_binary_with(extra=b"12345678"), 400,
                              r"binary data is 72 bytes, but the inputs' binary_data_size add up to 64"),
    "bad header length": (_binary_with(header_len=10 ** 6), 400, r"Inference-Header-Content-Length must be"),
    "binary without header": ((_binary_with()[0], {}), 400, r"request is not valid JSON"),
    "oversized body": ((b" " * (LIMIT + 100), {}), 413, r"over the server's limit of 1048576 bytes"),
    "engine fault": (_json_with(inputs=[(1, "data", [0, 100, 3])]), 500,
                     r"model 'tiny': node .*Gather.*: input 'idx' holds index 100 .*out of range"),
}


@pytest.mark.parametrize("case", list(BAD_REST))
def test_bad_rest_request_is_answered_and_server_keeps_serving(server, tiny_engine, case):
    (body, headers), status, message = BAD_REST[case]
    got, _, answer = http(server.http, "POST", "/v2/models/tiny/infer", body, headers)
    assert got == status, answer
    assert re.search(message, json.loads(answer)["error"]), json.loads(answer)["error"]
    inputs = tiny_inputs(2)
    status, headers, body = http(server.http, "POST", "/v2/models/tiny/infer", json_body(inputs))
    assert status == 200
    _assert_identical(outputs_of(headers, body), _expected(tiny_engine, inputs))


@pytest.mark.parametrize("path,status,message", [
    ("/v2/models/nope/infer", 404, r"unknown model 'nope'; this server serves \['tiny'\]"),
    ("/v2/models/tiny/versions/7/infer", 404, r"model 'tiny' has no version '7'"),
    ("/v2/nothing/here", 404, r"Not Found"),
])
def test_unknown_model_version_route(server, path, status, message):
    got, _, answer = http(server.http, "POST", path, json_body(tiny_inputs()))
    assert got == status and re.search(message, json.loads(answer)["error"])


def _raw_request(tg, **change):
    """A ModelInferRequest for the tiny model built field by field (tritonclient's own protobuf classes)."""
    from tritonclient.grpc import service_pb2
    inputs = tiny_inputs()
    req = service_pb2.ModelInferRequest(model_name=change.get("model", "tiny"))
    for name, a in inputs.items():
        t = req.inputs.add(name=change.get(f"{name}_name", name),
                           datatype=change.get(f"{name}_datatype", "FP32" if name == "x" else "INT64"),
                           shape=change.get(f"{name}_shape", list(a.shape)))
        del t
        req.raw_input_contents.append(change.get(f"{name}_raw", a.tobytes()))
    for _ in range(change.get("drop_raw", 0)):
        req.raw_input_contents.pop()
    return req


BAD_GRPC = {
    "wrong dtype": (dict(x_datatype="FP64"), "INVALID_ARGUMENT", r"input 'x': expected datatype FP32, given 'FP64'"),
    "wrong shape": (dict(x_shape=[2, 7]), "INVALID_ARGUMENT", r"input 'x': expected shape \[2, 8\], given \[2, 7\]"),
    "missing input": (dict(idx_name="x"), "INVALID_ARGUMENT", r"input 'x' is given twice"),
    "unknown model": (dict(model="nope"), "NOT_FOUND", r"unknown model 'nope'"),
    "wrong raw length": (dict(x_raw=b"\0" * 60), "INVALID_ARGUMENT", r"expected 64 bytes .* given 60"),
    "raw count": (dict(drop_raw=1), "INVALID_ARGUMENT", r"raw_input_contents has 1 entries for 2 inputs"),
    "oversized": (dict(x_raw=b"\0" * (LIMIT + 100)), "RESOURCE_EXHAUSTED", r"larger than max"),
    "engine fault": (dict(idx_raw=np.array([0, 100, 3]).tobytes()), "INTERNAL", r"holds index 100 .*out of range"),
}


@pytest.mark.parametrize("case", list(BAD_GRPC))
def test_bad_grpc_request_is_answered_and_server_keeps_serving(server, tiny_engine, case):
    import grpc
    tg = _tritonclient("grpc")
    from tritonclient.grpc import service_pb2_grpc
    change, code, message = BAD_GRPC[case]
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(_raw_request(tg, **change), timeout=60)
        assert err.value.code() == getattr(grpc.StatusCode, code) and re.search(message, err.value.details())
        answer = stub.ModelInfer(_raw_request(tg), timeout=60)
    got = {o.name: np.frombuffer(raw, np.float32).reshape(o.shape)
           for o, raw in zip(answer.outputs, answer.raw_output_contents)}
    _assert_identical(got, _expected(tiny_engine, tiny_inputs()))


# -- limits, metrics ----------------------------------------------------------------------------------

def test_queue_limit_answers_503_then_serves(tiny_engine):
    from tilerun.commands.common import load_model_arg
    with tilerun.compile_model(load_model_arg("squeezenet"), scheduler="multi_stream", num_streams=1) as eng, \
            InProcessServer([ServedModel("squeezenet", eng, max_queue=0)]) as s:
        x = np.random.default_rng(0).standard_normal(eng.input_shapes[0]).astype(np.float32)
        body, headers = binary_body({"data_0": x})
        barrier = threading.Barrier(12)

        def one(_):
            barrier.wait()
            return http(s.http, "POST", "/v2/models/squeezenet/infer", body, headers)
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(one, range(12)))
        codes = sorted(a[0] for a in answers)
        assert set(codes) <= {200, 503} and codes.count(200) >= 1 and codes.count(503) >= 1, codes
        busy = next(a for a in answers if a[0] == 503)
        assert busy[1]["retry-after"] == "1" and "queue is full" in json.loads(busy[2])["error"]
        expected = eng.run([x])[0]
        for status, hdrs, answer in answers:
            if status == 200:
                _assert_identical(outputs_of(hdrs, answer), {"softmaxout_1": expected})
        status, hdrs, answer = http(s.http, "POST", "/v2/models/squeezenet/infer", body, headers)
        assert status == 200
        metrics = http(s.http, "GET", "/metrics")[2].decode()
        assert _metric(metrics, "tilerun_request_errors_total", model="squeezenet", code="503") == codes.count(503)


def test_metrics(server):
    http(server.http, "POST", "/v2/models/tiny/infer", json_body(tiny_inputs()))
    http(server.http, "POST", "/v2/models/tiny/infer", b"{")
    http(server.http, "POST", "/v2/models/nope/infer", b"{")
    status, headers, body = http(server.http, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert _metric(text, "tilerun_requests_total", model="tiny", protocol="rest", code="200") >= 1
    assert _metric(text, "tilerun_request_errors_total", model="tiny", protocol="rest", code="400") >= 1
    assert _metric(text, "tilerun_request_errors_total", model="", protocol="rest", code="404") >= 1
    assert _metric(text, "tilerun_request_duration_seconds_count", model="tiny", protocol="rest") >= 2
    assert _metric(text, "tilerun_queue_depth", model="tiny") == 0
    assert _metric(text, "tilerun_inflight_requests", model="tiny") == 0
    assert _metric(text, "tilerun_model_streams", model="tiny") == server.server.plane.models["tiny"].streams


def _metric(text, name, **labels):
    """The value of the sample ``name`` whose labels include ``labels`` (None when there is none)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_v2_messages_match_tritonclients():
    """Our protobuf classes (built from data) number every field as tritonclient's generated ones do."""
    _tritonclient("grpc")
    from tritonclient.grpc import service_pb2
    from tilerun.serve.v2_proto import classes

    def fields(d):
        return {f.name: (f.number, f.type, f.message_type and f.message_type.full_name,
                         f.containing_oneof and f.containing_oneof.name,
                         getattr(f, "is_repeated", None) if hasattr(f, "is_repeated") else f.label == 3)
                for f in d.fields}
    for full, cls in classes.items():
        theirs = service_pb2.DESCRIPTOR.pool.FindMessageTypeByName("inference." + full)
        assert fields(cls.DESCRIPTOR).items() <= fields(theirs).items(), full


def test_model_args():
    assert serve.parse_model_arg("resnet=models/r50.onnx") == ("resnet", "models/r50.onnx")
    assert serve.parse_model_arg("models/r50.onnx") == ("r50", "models/r50.onnx")
    assert serve.parse_model_arg("squeezenet") == ("squeezenet", "squeezenet")
    assert serve.parse_model_arg("/tmp/a=b/m.onnx") == ("m", "/tmp/a=b/m.onnx")
    with pytest.raises(ValueError, match="same name"):
        serve.load_models(["a/m.onnx", "b/m.onnx"])


# -- the command line, in a subprocess ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    import onnx
    path = tmp_path_factory.mktemp("serve") / "tiny.onnx"
    onnx.save(tiny_model(), path)
    return str(path)


@pytest.fixture(scope="module")
def squeezenet_engine():
    from tilerun.commands.common import load_model_arg
    with tilerun.compile_model(load_model_arg("squeezenet")) as eng:
        yield eng


@pytest.mark.slow
def test_cli_serves_two_models_to_triton_clients(tiny_path, tiny_engine, squeezenet_engine):
    th, tg = _tritonclient("http"), _tritonclient("grpc")
    with ServerProcess(f"mini={tiny_path}", "squeezenet", "--max-request-mb", "1") as s:
        x = np.random.default_rng(3).standard_normal((1, 3, 224, 224)).astype(np.float32)
        expected = squeezenet_engine.run([x])[0]
        hc = th.InferenceServerClient(f"127.0.0.1:{s.http}")
        gc = tg.InferenceServerClient(f"127.0.0.1:{s.grpc}")
        assert hc.is_model_ready("mini") and hc.is_model_ready("squeezenet") and gc.is_model_ready("squeezenet")
        for client, mod in ((hc, th), (gc, tg)):
            t = mod.InferInput("data_0", [1, 3, 224, 224], "FP32")
            t.set_data_from_numpy(x)
            got = client.infer("squeezenet", [t]).as_numpy("softmaxout_1")
            assert got.dtype == expected.dtype and np.array_equal(got, expected)
        inputs = tiny_inputs(4)
        status, headers, body = http(s.http, "POST", "/v2/models/mini/infer", json_body(inputs))
        assert status == 200
        _assert_identical(outputs_of(headers, body), _expected(tiny_engine, inputs))
        for case in ("wrong dtype", "wrong shape", "missing input idx", "malformed JSON", "oversized body",
                     "binary cut short", "engine fault"):
            (body, hdrs), status, message = BAD_REST[case]
            got, _, answer = http(s.http, "POST", "/v2/models/mini/infer", body, hdrs)
            assert got == status and re.search(message.replace("'tiny'", "'mini'"), json.loads(answer)["error"])
        assert http(s.http, "POST", "/v2/models/tiny/infer", json_body(inputs))[0] == 404
        t = th.InferInput("data_0", [1, 3, 224, 224], "FP32")
        t.set_data_from_numpy(x)
        assert np.array_equal(hc.infer("squeezenet", [t]).as_numpy("softmaxout_1"), expected)
    assert s.proc.returncode == 0
    assert not [line for line in s.lines if "Traceback" in line and "engine fault" not in line]
    assert all(json.loads(line) for line in s.lines), "every log line is one JSON object"
    assert s.events("stopped")[0]["unanswered"] == 0


@pytest.mark.slow
def test_cli_shutdown_answers_every_request_in_flight(squeezenet_engine):
    """SIGTERM with requests running and queued: each accepted one gets its (correct) answer, then exit 0.

    A request the server had not yet accepted when the drain began may get 503/UNAVAILABLE instead
    (a clear error); the server's own count of pending requests at the signal bounds the 200s from below.
    """
    import grpc
    tg = _tritonclient("grpc")
    n_rest, n_grpc = 12, 12
    with ServerProcess("squeezenet", "--num-streams", "1", "--num-cores", "1", "--max-queue", "64") as s:
        x = np.random.default_rng(7).standard_normal((1, 3, 224, 224)).astype(np.float32)
        expected = squeezenet_engine.run([x])[0]
        body, headers = binary_body({"data_0": x})
        client = tg.InferenceServerClient(f"127.0.0.1:{s.grpc}")
        barrier = threading.Barrier(n_rest + n_grpc)

        def rest(_):
            barrier.wait()
            status, hdrs, answer = http(s.http, "POST", "/v2/models/squeezenet/infer", body, headers, timeout=120)
            return status, outputs_of(hdrs, answer)["softmaxout_1"] if status == 200 else json.loads(answer)

        def grpc_call(_):
            t = tg.InferInput("data_0", [1, 3, 224, 224], "FP32")
            t.set_data_from_numpy(x)
            barrier.wait()
            try:
                return 200, client.infer("squeezenet", [t], client_timeout=120).as_numpy("softmaxout_1")
            except tg.InferenceServerException as e:
                return e.status(), e.message()
        with concurrent.futures.ThreadPoolExecutor(n_rest + n_grpc) as pool:
            futures = [pool.submit(rest, i) for i in range(n_rest)] + [pool.submit(grpc_call, i)
                                                                        for i in range(n_grpc)]
            deadline, pending = time.monotonic() + 60, 0
            while pending < (n_rest + n_grpc) // 2 and time.monotonic() < deadline:
                m = http(s.http, "GET", "/metrics")[2].decode()
                pending = sum(float(v) for v in re.findall(
                    r'^tilerun_(?:inflight_requests|queue_depth)\{model="squeezenet"\} (\S+)', m, re.M))
            assert pending >= (n_rest + n_grpc) // 2, pending
            s.signal(signal.SIGTERM)
            results = [f.result(timeout=120) for f in futures]
        code = s.wait(120)
    assert code == 0
    ok = [out for status, out in results if status == 200]
    assert all(np.array_equal(out, expected) for out in ok)
    refused = [(status, out) for status, out in results if status != 200]
    assert all(status in (503, str(grpc.StatusCode.UNAVAILABLE)) for status, _ in refused), refused
    assert len(ok) >= s.events("draining")[0]["pending"] >= (n_rest + n_grpc) // 2
    stopped = s.events("stopped")
    assert stopped and stopped[0]["unanswered"] == 0
    assert not [line for line in s.lines if "Traceback" in line]


@pytest.mark.slow
def test_cli_bad_flags_missing_model_busy_port_fail_cleanly(tmp_path):
    run = [sys.executable, "-m", "tilerun.cli", "serve"]
    r = subprocess.run(run + ["--port", "70000", "squeezenet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--port must be a port number" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(run + [str(tmp_path / "missing.onnx"), "--port", "0", "--grpc-port", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "model not found" in r.stderr and "Traceback" not in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for flags in (["--port", str(port), "--grpc-port", "0"], ["--port", "0", "--grpc-port", str(port)]):
            r = subprocess.run(run + ["squeezenet", *flags], capture_output=True, text=True, timeout=300)
            assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr
            assert "Traceback" not in r.stderr


def test_cli_says_how_to_install_the_serve_extra(monkeypatch, capsys):
    from tilerun.cli import main
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the serve extra were not installed
    for name in [m for m in sys.modules if m == "tilerun.serve" or m.startswith("tilerun.serve.")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["serve", "squeezenet"]) == 1
    err = capsys.readouterr().err
    assert "tilerun serve: tilerun.serve needs the serve extra: pip install 'tilerun[serve]' (missing: fastapi)" in err
