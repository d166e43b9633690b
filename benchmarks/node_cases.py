"""onnx's node test cases through ``tilerun.compile_model`` + ``Engine.run`` alone: the pass count.

Collects the cases of ``onnx.backend.test.case.node.collect_testcases()``
whose nodes are all op types tilerun registers (the same selection as
``tests/test_conformance.py``), compiles each model as a user would
(``compile_model(model, num_cores=1)``: no binding of inputs, no shapes
given), runs each data set and compares as onnx's runner does. Prints the
pass count and, with ``-v``, each failure and its first line of error.

    python benchmarks/node_cases.py [-v] [--only SUBSTRING]
"""
import argparse
import collections
import warnings

import numpy as np
from onnx.backend.test.case.node import collect_testcases
from onnx.backend.test.runner import Runner

import tilerun
from tilerun.ops import supported_ops


def cases(only=None):
    """The collected node cases whose op types are all registered (optionally whose name has ``only``)."""
    ops = set(supported_ops())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = collect_testcases(None)
    keep = [c for c in found if all(n.op_type in ops and n.domain in ("", "ai.onnx") for n in c.model.graph.node)]
    return sorted((c for c in keep if only is None or only in c.name), key=lambda c: c.name)


def run_case(case):
    """None when every data set matches, else the error's first line."""
    try:
        with tilerun.compile_model(case.model, num_cores=1) as eng:
            for inputs, expected in case.data_sets:
                outs = eng.run([np.asarray(a) for a in inputs])
                Runner.assert_similar_outputs(expected, outs, rtol=case.rtol, atol=case.atol)
    except Exception as e:  # a failing case is counted, not fatal
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:200]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-v", action="store_true", help="print each failure")
    ap.add_argument("--only", help="run only cases whose name contains this")
    args = ap.parse_args()
    selected = cases(args.only)
    failures = {}
    for case in selected:
        err = run_case(case)
        if err is not None:
            failures[case.name] = err
    if args.v:
        for name, err in failures.items():
            print(f"FAIL {name}: {err}")
    kinds = collections.Counter(err.split(":")[0] for err in failures.values())
    passed = len(selected) - len(failures)
    print(f"{passed} of {len(selected)} node cases pass through compile_model + run "
          f"({100.0 * passed / max(1, len(selected)):.1f}%); failures by error: {dict(kinds)}")


if __name__ == "__main__":
    main()
