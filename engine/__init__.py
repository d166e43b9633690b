"""tilerun: a CPU inference engine for ONNX models with Numba tile kernels.

    import tilerun
    eng = tilerun.compile_model("model.onnx", batch_size=1)
    outs = eng.run([x])
"""
from tilerun.scheduler import Scheduler

from .api import Engine, compile_model
from .errors import ArgumentError, InputError, ModelError, RequestError, TilerunError, UnsupportedOpError

__version__ = "0.1.0"
__all__ = ["compile_model", "Engine", "Scheduler", "TilerunError", "ArgumentError", "ModelError", "InputError",
           "RequestError", "UnsupportedOpError", "__version__"]
