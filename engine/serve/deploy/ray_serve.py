"""Ray Serve deployment of tilerun models over the Open Inference Protocol (REST).

Each replica compiles the models once (in its own process, so its engine's
workers are its own) and serves ``tilerun.serve``'s REST app: the same v2
endpoints, errors and ``/metrics`` as ``tilerun serve``. Ray Serve adds the
replicas, routing and autoscaling across a Ray cluster.

    pip install 'tilerun[serve]' 'ray[serve]'
    TILERUN_MODELS=squeezenet serve run ray_serve:app     # from this folder, or:
    python ray_serve.py squeezenet                        # local: deploy, send one request, shut down

``TILERUN_MODELS`` lists the models (``NAME=PATH``, paths or light model
names) separated by commas; ``TILERUN_CORES`` the cores each replica uses.
"""
import os
import sys

from ray import serve


def build_asgi_app():
    """The replica's ASGI app; Ray Serve calls this on each replica."""
    from tilerun.serve import DataPlane, create_app, load_models
    models = os.environ.get("TILERUN_MODELS", "squeezenet").split(",")
    cores = int(os.environ.get("TILERUN_CORES", "2"))
    return create_app(DataPlane(load_models(models, scheduler="multi_stream", num_cores=cores)))


TilerunV2 = serve.deployment(serve.ingress(build_asgi_app)(), name="tilerun", num_replicas=1,
                             ray_actor_options={"num_cpus": int(os.environ.get("TILERUN_CORES", "2"))},
                             max_ongoing_requests=64)
app = TilerunV2.bind()


def main(models):
    """Deploy locally, check one request against an in-process engine, print the answer, shut down."""
    import json
    import urllib.request

    import numpy as np
    import ray

    import tilerun
    from tilerun.commands.common import load_model_arg
    from tilerun.serve import parse_model_arg

    os.environ["TILERUN_MODELS"] = ",".join(models)
    name, path = parse_model_arg(models[0])
    ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False,
             runtime_env={"env_vars": {k: os.environ[k] for k in ("TILERUN_MODELS", "NUMBA_CACHE_DIR")
                                       if k in os.environ}})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": int(os.environ.get("RAY_SERVE_PORT", "8000"))})
        serve.run(app, route_prefix="/")
        base = f"http://127.0.0.1:{os.environ.get('RAY_SERVE_PORT', '8000')}"
        meta = json.load(urllib.request.urlopen(f"{base}/v2/models/{name}"))
        with tilerun.compile_model(load_model_arg(path)) as eng:
            x = np.random.default_rng(0).standard_normal(eng.input_shapes[0]).astype(eng.input_dtypes[0])
            expected = eng.run([x])[0]
        body = json.dumps({"inputs": [{"name": meta["inputs"][0]["name"], "shape": list(x.shape),
                                       "datatype": meta["inputs"][0]["datatype"], "data": x.ravel().tolist()}]})
        req = urllib.request.Request(f"{base}/v2/models/{name}/infer", body.encode(),
                                     {"Content-Type": "application/json"})
        out = json.load(urllib.request.urlopen(req))["outputs"][0]
        got = np.asarray(out["data"], expected.dtype).reshape(out["shape"])
        print(json.dumps({"model": name, "bit_identical": bool(np.array_equal(got, expected)),
                          "shape": out["shape"]}))
        return 0 if np.array_equal(got, expected) else 1
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["squeezenet"]))
