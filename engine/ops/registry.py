"""The one registry mapping ``(domain, op_type, since_version)`` to a lowering.

ONNX's own ops (domain ``""``, also spelt ``"ai.onnx"``) register with
``@register`` in their family module; ops of any other domain (custom ops,
``tilerun.custom``) with ``register_domain_op``. The two never mix: a node of
a user domain resolves only among that domain's ops, so a ``com.example.Relu``
never reaches the built-in Relu, and no op can be added to the default
domain from outside. ``resolve`` picks the newest registered version not
above the version the model imports of the node's domain, as ONNX's own
operator sets are resolved.

Ops tilerun's own passes create (``ChannelAffine``) register with
``@register_internal`` in ``INTERNAL_DOMAIN``: no model node reaches them (the
importer refuses that domain, and a default-domain node of the same name
resolves among ONNX's ops only), and neither ``supported_ops`` nor
``domain_ops`` lists them.
"""
DEFAULT_DOMAINS = ("", "ai.onnx")
INTERNAL_DOMAIN = "tilerun.internal"

_REGISTRY = {}  # op_type → [(since, lowering)], default domain
_DOMAIN_OPS = {}  # (domain, op_type) → [(since, lowering)], every other domain


def register(op_type, since=1):
    """Class decorator: the lowering handles default-domain ``op_type`` from opset ``since`` on."""
    def deco(cls):
        entries = _REGISTRY.setdefault(op_type, [])
        entries.append((since, cls()))
        entries.sort(key=lambda e: e[0])
        return cls
    return deco


def register_internal(op_type):
    """Class decorator: the lowering handles ``op_type`` of ``INTERNAL_DOMAIN``, an op tilerun's passes create."""
    def deco(cls):
        _DOMAIN_OPS[(INTERNAL_DOMAIN, op_type)] = [(1, cls())]
        return cls
    return deco


def register_domain_op(domain, op_type, since, lowering):
    """Add ``lowering`` for ``domain``'s ``op_type`` from that domain's version ``since`` on.

    Raises ``ValueError`` for a default domain, the internal domain or an
    already registered ``(domain, op_type, since)``.
    """
    if domain in DEFAULT_DOMAINS:
        raise ValueError(f"domain {domain!r} is ONNX's default domain; ops of another domain only can be added")
    if domain == INTERNAL_DOMAIN:
        raise ValueError(f"domain {domain!r} is reserved for the ops tilerun's passes create")
    entries = _DOMAIN_OPS.setdefault((domain, op_type), [])
    if any(s == since for s, _ in entries):
        raise ValueError(f"op {domain}.{op_type} since version {since} is already registered")
    entries.append((since, lowering))
    entries.sort(key=lambda e: e[0])


def unregister_domain_op(domain, op_type, since):
    """Remove what ``register_domain_op(domain, op_type, since, ...)`` added (nothing if absent)."""
    entries = [e for e in _DOMAIN_OPS.get((domain, op_type), ()) if e[0] != since]
    if entries:
        _DOMAIN_OPS[(domain, op_type)] = entries
    else:
        _DOMAIN_OPS.pop((domain, op_type), None)


def resolve(op_type, opset, domain=""):
    """The lowering for ``op_type`` of ``domain`` at ``opset``, or None when tilerun has none.

    ``opset`` is the model's default-domain version; for another domain the
    version comes from ``opset.domains`` (the importer's ``Opset``), and is
    taken as the newest registered one when the model imports no version of
    that domain.
    """
    if domain in DEFAULT_DOMAINS:
        entries = _REGISTRY.get(op_type, ())
    else:
        entries = _DOMAIN_OPS.get((domain, op_type), ())
        version = getattr(opset, "domains", {}).get(domain)
        opset = entries[-1][0] if version is None and entries else version
    best = None
    for since, lowering in entries:
        if since <= opset:
            best = lowering
    return best


def supported_ops():
    """Map default-domain op type → sorted list of the opset versions its lowerings start at."""
    return {op: [s for s, _ in entries] for op, entries in sorted(_REGISTRY.items())}


def domain_ops():
    """Map ``(domain, op_type)`` of every op registered outside the default (and internal) domain → its versions."""
    return {key: [s for s, _ in entries] for key, entries in sorted(_DOMAIN_OPS.items()) if key[0] != INTERNAL_DOMAIN}
