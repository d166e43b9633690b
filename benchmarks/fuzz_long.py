"""Run the model fuzzer of ``tests/test_fuzz.py`` for minutes; count cases, failures, crashes, hangs.

    python benchmarks/fuzz_long.py --minutes 10 [--seed 0] [--hang-seconds 60]

The cases run in a child process, one seed after another (seed ``s`` is
``make_case(random.Random(s))``, so every case is reproducible by its seed).
The parent watches it: a child that dies while a case runs is a *crash*, one
that reports nothing for ``--hang-seconds`` is a *hang* (it is killed); either
way a new child goes on from the next seed. A case where anything but a
``tilerun.TilerunError`` escapes is a *failure*. Prints the counts and the
seeds of every bad case; exits 1 if there was any.
"""
import argparse
import collections
import os
import pathlib
import random
import select
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def child(first_seed):
    """Run cases from ``first_seed`` on, reporting ``BEGIN``/``END``/``FAIL`` lines on stdout."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    sys.path.insert(0, str(ROOT / "tests"))
    import warnings
    warnings.filterwarnings("ignore")
    import test_fuzz
    seed = first_seed
    while True:
        print(f"BEGIN {seed}", flush=True)
        rng = random.Random(seed)
        model, applied = test_fuzz.make_case(rng)
        try:
            outcome = test_fuzz.check_case(model, rng)
        except AssertionError as e:
            last = str(e).strip().splitlines()[-1]
            print(f"FAIL {seed} {'+'.join(applied)} {last}", flush=True)
            outcome = "failed"
        print(f"END {seed} {outcome}", flush=True)
        seed += 1


def parent(minutes, first_seed, hang_seconds):
    """Drive children for ``minutes``; return the summary dict."""
    deadline = time.monotonic() + 60 * minutes
    outcomes = collections.Counter()
    failures, crashes, hangs = [], [], []
    seed = first_seed
    while time.monotonic() < deadline:
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(seed)], stdout=subprocess.PIPE,
                                text=True, bufsize=1)
        running, last_line = None, time.monotonic()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                if not line:  # the child died
                    proc.wait()
                    if running is not None:
                        crashes.append((running, proc.returncode))
                        seed = running + 1
                    break
                last_line = time.monotonic()
                word, rest = line.split(" ", 1)
                if word == "BEGIN":
                    running = int(rest)
                elif word == "END":
                    s, outcome = rest.split()
                    outcomes[outcome] += 1
                    running, seed = None, int(s) + 1
                elif word == "FAIL":
                    failures.append(rest.strip())
            elif running is not None and time.monotonic() - last_line > hang_seconds:
                proc.kill()
                proc.wait()
                hangs.append(running)
                seed = running + 1
                break
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return dict(cases=sum(outcomes.values()) + len(crashes) + len(hangs), outcomes=dict(outcomes),
                failures=failures, crashes=crashes, hangs=hangs, next_seed=seed)


def main():
    """Parse arguments, fuzz, print the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0, help="first case seed")
    ap.add_argument("--hang-seconds", type=float, default=60.0)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child)
        return 0
    t0 = time.monotonic()
    r = parent(args.minutes, args.seed, args.hang_seconds)
    print(f"fuzzed {(time.monotonic() - t0) / 60:.1f} min: {r['cases']} cases (seeds {args.seed}.."
          f"{r['next_seed'] - 1}), outcomes {r['outcomes']}")
    print(f"non-tilerun exceptions: {len(r['failures'])}, crashes: {len(r['crashes'])}, hangs: {len(r['hangs'])}")
    for f in r["failures"]:
        print("  failure:", f)
    for s, code in r["crashes"]:
        print(f"  crash: seed {s} (exit status {code})")
    for s in r["hangs"]:
        print(f"  hang: seed {s}")
    return 1 if r["failures"] or r["crashes"] or r["hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
