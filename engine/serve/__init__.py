"""``tilerun.serve``: a model server speaking the Open Inference Protocol (KServe v2) over REST and gRPC.

    from tilerun.serve import serve
    serve(["squeezenet", "resnet=models/resnet50.onnx"], port=8000, grpc_port=8001)

or ``tilerun serve MODEL [MODEL ...]``. Each model is compiled once into an
engine (``multi_stream`` by default) that every connection shares; Triton
and KServe clients, KServe itself and load balancers talk to it unchanged.
Modules: ``tensors`` (datatypes, checks), ``models`` (a served engine and its
queue limit), ``rest_codec`` / ``rest`` (HTTP), ``v2_proto`` /
``grpc_server`` (gRPC), ``dataplane`` (what both share), ``metrics``,
``logs``, ``server`` (lifecycle). Needs the ``serve`` extra:
``pip install 'tilerun[serve]'``.
"""
import importlib.util

_NEEDED = {"fastapi": "fastapi", "uvicorn": "uvicorn", "grpc": "grpcio", "google.protobuf": "protobuf",
           "prometheus_client": "prometheus_client"}


def _absent(module):
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # its parent package is missing
        return True


_missing = [pkg for mod, pkg in _NEEDED.items() if _absent(mod)]
if _missing:
    raise ImportError(f"tilerun.serve needs the serve extra: pip install 'tilerun[serve]' "
                      f"(missing: {', '.join(_missing)})")

from .dataplane import DataPlane  # noqa: E402
from .errors import BadRequest, Busy, NotFound, ServeError, ShuttingDown, TooLarge  # noqa: E402
from .models import ServedModel, load_models, parse_model_arg  # noqa: E402
from .rest import create_app  # noqa: E402
from .server import ModelServer, serve  # noqa: E402

__all__ = ["serve", "ModelServer", "ServedModel", "DataPlane", "create_app", "load_models", "parse_model_arg",
           "ServeError", "BadRequest", "NotFound", "TooLarge", "Busy", "ShuttingDown"]
