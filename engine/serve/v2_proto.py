"""The Open Inference Protocol's gRPC messages (package ``inference``), built at import time.

The messages are declared below as data (field → number and type, the way
the protocol's ``grpc_predict_v2.proto`` numbers them) and turned into
protobuf classes through a private descriptor pool: no generated ``_pb2``
code, so any protobuf runtime from 4.21 on works, and the classes never
clash with another copy of the protocol (tritonclient's) in the same
process. ``InferParameter`` carries Triton's ``double_param`` and
``uint64_param`` too. Only what the server answers is declared: health,
metadata and ``ModelInfer``.
"""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"

# "T" a scalar or message type, "*T" repeated, "map:T" map<string, T>, "T|g" a member of oneof g.
_TENSOR = {"name": (1, "string"), "datatype": (2, "string"), "shape": (3, "*int64"),
           "parameters": (4, "map:InferParameter"), "contents": (5, "InferTensorContents")}
MESSAGES = {
    "ServerLiveRequest": {}, "ServerLiveResponse": {"live": (1, "bool")},
    "ServerReadyRequest": {}, "ServerReadyResponse": {"ready": (1, "bool")},
    "ModelReadyRequest": {"name": (1, "string"), "version": (2, "string")},
    "ModelReadyResponse": {"ready": (1, "bool")},
    "ServerMetadataRequest": {},
    "ServerMetadataResponse": {"name": (1, "string"), "version": (2, "string"), "extensions": (3, "*string")},
    "ModelMetadataRequest": {"name": (1, "string"), "version": (2, "string")},
    "ModelMetadataResponse": {"name": (1, "string"), "versions": (2, "*string"), "platform": (3, "string"),
                              "inputs": (4, "*ModelMetadataResponse.TensorMetadata"),
                              "outputs": (5, "*ModelMetadataResponse.TensorMetadata")},
    "ModelMetadataResponse.TensorMetadata": {"name": (1, "string"), "datatype": (2, "string"),
                                             "shape": (3, "*int64")},
    "InferParameter": {"bool_param": (1, "bool|parameter_choice"), "int64_param": (2, "int64|parameter_choice"),
                       "string_param": (3, "string|parameter_choice"),
                       "double_param": (4, "double|parameter_choice"),
                       "uint64_param": (5, "uint64|parameter_choice")},
    "InferTensorContents": {"bool_contents": (1, "*bool"), "int_contents": (2, "*int32"),
                            "int64_contents": (3, "*int64"), "uint_contents": (4, "*uint32"),
                            "uint64_contents": (5, "*uint64"), "fp32_contents": (6, "*float"),
                            "fp64_contents": (7, "*double"), "bytes_contents": (8, "*bytes")},
    "ModelInferRequest": {"model_name": (1, "string"), "model_version": (2, "string"), "id": (3, "string"),
                          "parameters": (4, "map:InferParameter"),
                          "inputs": (5, "*ModelInferRequest.InferInputTensor"),
                          "outputs": (6, "*ModelInferRequest.InferRequestedOutputTensor"),
                          "raw_input_contents": (7, "*bytes")},
    "ModelInferRequest.InferInputTensor": _TENSOR,
    "ModelInferRequest.InferRequestedOutputTensor": {"name": (1, "string"),
                                                     "parameters": (2, "map:InferParameter")},
    "ModelInferResponse": {"model_name": (1, "string"), "model_version": (2, "string"), "id": (3, "string"),
                           "parameters": (4, "map:InferParameter"),
                           "outputs": (5, "*ModelInferResponse.InferOutputTensor"),
                           "raw_output_contents": (6, "*bytes")},
    "ModelInferResponse.InferOutputTensor": _TENSOR,
}
# method → (request, response) message names
METHODS = {"ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
           "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
           "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
           "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
           "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
           "ModelInfer": ("ModelInferRequest", "ModelInferResponse")}

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {"bool": _F.TYPE_BOOL, "int32": _F.TYPE_INT32, "int64": _F.TYPE_INT64, "uint32": _F.TYPE_UINT32,
            "uint64": _F.TYPE_UINT64, "float": _F.TYPE_FLOAT, "double": _F.TYPE_DOUBLE,
            "string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES}


def _add_field(msg, name, number, kind, scope):
    """Add field ``name`` to the DescriptorProto ``msg`` (``scope``: the message's full name)."""
    f = msg.field.add(name=name, number=number, label=_F.LABEL_OPTIONAL)
    kind, _, oneof = kind.partition("|")
    if kind.startswith("map:"):
        entry = msg.nested_type.add(name="".join(p.title() for p in name.split("_")) + "Entry")
        entry.options.map_entry = True
        _add_field(entry, "key", 1, "string", None)
        _add_field(entry, "value", 2, kind[4:], None)
        f.label, f.type, f.type_name = _F.LABEL_REPEATED, _F.TYPE_MESSAGE, f".{scope}.{entry.name}"
        return
    if kind.startswith("*"):
        f.label, kind = _F.LABEL_REPEATED, kind[1:]
    if kind in _SCALARS:
        f.type = _SCALARS[kind]
    else:
        f.type, f.type_name = _F.TYPE_MESSAGE, f".{PACKAGE}.{kind}"
    if oneof:
        names = [o.name for o in msg.oneof_decl]
        if oneof not in names:
            msg.oneof_decl.add(name=oneof)
        f.oneof_index = [o.name for o in msg.oneof_decl].index(oneof)


def _build():
    fd = descriptor_pb2.FileDescriptorProto(name="tilerun_grpc_predict_v2.proto", package=PACKAGE,
                                            syntax="proto3")
    protos = {}
    for full, fields in MESSAGES.items():
        parent, _, name = full.rpartition(".")
        msg = (protos[parent].nested_type if parent else fd.message_type).add(name=name)
        protos[full] = msg
        for field, (number, kind) in fields.items():
            _add_field(msg, field, number, kind, f"{PACKAGE}.{full}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {full: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{full}"))
            for full in MESSAGES}


classes = _build()
