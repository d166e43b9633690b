"""tilerun: a CPU inference engine for ONNX models with Numba tile kernels.

    import tilerun
    eng = tilerun.compile_model("model.onnx", batch_size=1)
    outs = eng.run([x])

Custom ops (an op of your own domain with a Numba tile kernel): ``tilerun.custom_op``,
and ``tilerun.custom`` for what a kernel reads its parameters with.
"""
from tilerun.scheduler import Scheduler, Topology

from .api import Engine, compile_model
from .custom import CustomOp, CustomOpError, custom_op, declare_row
from .errors import (ArgumentError, InputError, ModelError, QuantizedModelError, RequestError, TilerunError,
                     UnsupportedOpError)

__version__ = "0.1.0"
__all__ = ["compile_model", "Engine", "Scheduler", "Topology", "TilerunError", "ArgumentError", "ModelError",
           "InputError", "RequestError", "UnsupportedOpError", "QuantizedModelError", "custom_op", "CustomOp",
           "CustomOpError", "declare_row", "__version__"]
