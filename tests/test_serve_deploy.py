"""The deployment files of the model server, exercised as far as this machine allows.

The KServe ``InferenceService`` and the container file cannot run here (no
cluster, no container daemon), so they are parsed and their command lines
checked against the ``tilerun serve`` parser, their ports and probes against
each other and the server's endpoints. The Ray Serve example runs locally
when ``ray[serve]`` is installed (it is not part of any extra), skipped with
that reason otherwise.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

from tilerun.cli import build_parser

DEPLOY = pathlib.Path(__file__).resolve().parents[1] / "engine" / "serve" / "deploy"


def _serve_args(argv):
    """The parsed ``tilerun serve`` arguments of a command line (argparse exits on a bad one)."""
    assert argv[:2] == ["tilerun", "serve"], argv
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    return args


def test_inferenceservice_runs_tilerun_serve_on_its_ports():
    yaml = pytest.importorskip("yaml", reason="pyyaml is a test dependency: pip install -e '.[dev]'")
    doc = yaml.safe_load((DEPLOY / "inferenceservice.yaml").read_text())
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    predictor = doc["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"  # the name KServe gives the predictor's container
    args = _serve_args(container["command"] + container["args"])
    assert args.host == "0.0.0.0"  # reachable from the pod network
    assert args.models == ["model=/mnt/models/model.onnx"]  # where the storage initializer puts STORAGE_URI
    assert [e["name"] for e in container["env"]] == ["STORAGE_URI"]
    (port,) = container["ports"]
    assert port["containerPort"] == args.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": args.port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": args.port}
    annotations = doc["metadata"]["annotations"]
    assert annotations["prometheus.kserve.io/port"] == str(args.port)
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
    assert predictor["terminationGracePeriodSeconds"] > args.grace  # the drain finishes before SIGKILL
    assert int(container["resources"]["limits"]["cpu"]) == args.num_cores


def test_containerfile_entrypoint_is_tilerun_serve():
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    instr = {}
    for line in lines:
        word, _, rest = line.partition(" ")
        if word in ("ENTRYPOINT", "CMD", "EXPOSE", "FROM"):
            instr[word] = rest.strip()
    entry, cmd = json.loads(instr["ENTRYPOINT"]), json.loads(instr["CMD"])
    args = _serve_args(entry + cmd)
    assert args.host == "0.0.0.0"
    assert sorted(map(int, instr["EXPOSE"].split())) == sorted([args.port, args.grpc_port])
    assert any(line.startswith("RUN pip install") and '".[serve]"' in line for line in lines)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_serve_example_runs_locally():
    pytest.importorskip("ray.serve", reason="ray[serve] is not installed (no extra pulls it in): "
                                            "pip install 'ray[serve]' to run the Ray Serve example")
    env = dict(os.environ, RAY_SERVE_PORT=str(_free_port()))
    r = subprocess.run([sys.executable, str(DEPLOY / "ray_serve.py"), "squeezenet"], capture_output=True, text=True,
                       timeout=900, env=env, cwd=DEPLOY)
    assert r.returncode == 0, r.stderr[-3000:]
    answer = json.loads(next(line for line in r.stdout.splitlines() if line.startswith('{"model"')))
    assert answer == {"model": "squeezenet", "bit_identical": True, "shape": [1, 1000, 1, 1]}
