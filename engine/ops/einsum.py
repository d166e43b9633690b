"""Einsum lowered onto Transpose, ReduceSum and MatMul: the contractions exports produce.

One operand: a transpose to the output's order after summing the letters the
output drops. Two operands: letters only one side has and the output drops
are summed first; the rest fall in four groups (batch: both sides and the
output; contracted: both sides only; left/right free), the operands are
permuted and viewed as ``[batch, m, k]`` and ``[batch, k, n]`` for one
batched MatMul, and its ``[batch, m, n]`` result is viewed and permuted into
the output's order. ``...`` takes the leading axes. Not here: a letter
repeated within one operand (a diagonal), three or more operands, letters
broadcast between operands (a size-1 axis against a larger one), and
non-float32 dtypes.
"""
import numpy as np

from ..errors import node_error
from .base import F32, Lowering, expect_dtype
from .compose import Composer
from .registry import register


def parse_equation(node, shapes):
    """``(operand letter strings, output letters, {letter: size})`` with ``...`` spelled as upper-case letters."""
    eq = node.attrs.get("equation", "")
    eq = eq.decode() if isinstance(eq, bytes) else str(eq)
    eq = eq.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise node_error(node, f"equation {eq!r} names {len(terms)} operands, given {len(shapes)} inputs")
    ell_rank = max([len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes) if "..." in t] or [0])
    ell = "".join(chr(ord("A") + i) for i in range(ell_rank))
    letters, sizes = [], {}
    for t, s in zip(terms, shapes):
        if "..." in t:
            t = t.replace("...", ell[ell_rank - (len(s) - len(t.replace("...", ""))):])
        if len(t) != len(s) or not t.isalpha():
            raise node_error(node, f"equation term {t!r} does not match an input of shape {list(s)}")
        if len(set(t)) != len(t):
            raise node_error(node, f"equation {eq!r} repeats a letter within one operand (a diagonal); "
                                   f"tilerun's Einsum does not take diagonals")
        for c, d in zip(t, s):
            if sizes.setdefault(c, d) != d:
                raise node_error(node, f"letter {c!r} has sizes {sizes[c]} and {d} in equation {eq!r}; "
                                       f"expected equal sizes (broadcasting is not supported)")
        letters.append(t)
    if arrow:
        out = out.replace("...", ell)
        if any(c not in sizes for c in out) or len(set(out)) != len(out):
            raise node_error(node, f"output {out!r} of equation {eq!r} names a letter no operand has, or twice")
    else:  # implicit output: ellipsis axes, then the letters used once, in alphabetical order
        once = sorted(c for c in sizes if c.islower() and sum(t.count(c) for t in letters) == 1)
        out = ell + "".join(once)
    return letters, out, sizes


@register("Einsum", 12)
class Einsum(Lowering):
    """Einsum of one or two float32 operands, as the module docstring bounds it."""

    def infer(self, node, inputs):
        if not 1 <= len(inputs) <= 2:
            raise node_error(node, f"expected 1 or 2 inputs, given {len(inputs)}; tilerun's Einsum takes at most 2")
        for v in inputs:
            expect_dtype(node, v, [F32])
        _, out, sizes = parse_equation(node, [v.shape for v in inputs])
        return [(tuple(sizes[c] for c in out), F32)]

    def lower(self, node, inputs, outputs, plan):
        terms, out, sizes = parse_equation(node, [v.shape for v in inputs])
        c = Composer(node, plan)
        keep = set(out) | (set(terms[0]) & set(terms[-1]) if len(terms) == 2 else set())
        ops = [_sum_out(c, v, t, keep) for v, t in zip(inputs, terms)]
        ops, terms = [o for o, _ in ops], [t for _, t in ops]
        if len(ops) == 1:
            _permute(c, ops[0], terms[0], out, outputs[0])
            return
        (a, b), (ta, tb) = ops, terms
        batch = [x for x in out if x in ta and x in tb]
        left = [x for x in ta if x in out and x not in tb]
        right = [x for x in tb if x in out and x not in ta]
        inner = [x for x in ta if x in tb and x not in out]
        size = lambda group: int(np.prod([sizes[x] for x in group], dtype=np.int64))  # noqa: E731
        a = _permute(c, a, ta, batch + left + inner)
        b = _permute(c, b, tb, batch + inner + right)
        a = _view(c, a, [size(batch), size(left), size(inner)])
        b = _view(c, b, [size(batch), size(inner), size(right)])
        mm = c.op("MatMul", [a, b])
        order = batch + left + right
        _permute(c, _view(c, mm, [sizes[x] for x in order]), "".join(order), out, outputs[0])


def _sum_out(c, v, term, keep):
    """Sum the axes of ``v`` whose letters are not in ``keep``: ``(value, remaining letters)``."""
    axes = [i for i, x in enumerate(term) if x not in keep]
    if not axes:
        return v, term
    r = c.op("ReduceSum", [v, c.const(np.array(axes, np.int64))], keepdims=0)
    return r, "".join(x for x in term if x in keep)


def _permute(c, v, term, order, out=None):
    """``v`` (letters ``term``) transposed to the letter order ``order``, into ``out`` when given."""
    order = "".join(order)
    perm = [term.index(x) for x in order]
    if perm == list(range(len(perm))):
        return c.op("Identity", [v], out=out) if out is not None else v
    return c.op("Transpose", [v], out=out, perm=perm)


def _view(c, v, shape):
    """``v`` reshaped (a view) to ``shape``."""
    if tuple(shape) == tuple(v.shape):
        return v
    return c.op("Reshape", [v, c.const(np.array(shape, np.int64))])
