"""The one registry mapping ``(op_type, since_version)`` to a lowering.

``resolve`` picks the newest registered version not above the model's opset,
as ONNX's own operator sets are resolved. Adding an op is adding a class with
``@register`` in its family module.
"""
_REGISTRY = {}


def register(op_type, since=1):
    """Class decorator: the lowering handles ``op_type`` from opset ``since`` on."""
    def deco(cls):
        entries = _REGISTRY.setdefault(op_type, [])
        entries.append((since, cls()))
        entries.sort(key=lambda e: e[0])
        return cls
    return deco


def resolve(op_type, opset, domain=""):
    """The lowering for ``op_type`` at ``opset``, or None when tilerun has none."""
    if domain not in ("", "ai.onnx"):
        return None
    best = None
    for since, lowering in _REGISTRY.get(op_type, ()):
        if since <= opset:
            best = lowering
    return best


def supported_ops():
    """Map op type → sorted list of the opset versions its lowerings start at."""
    return {op: [s for s, _ in entries] for op, entries in sorted(_REGISTRY.items())}
