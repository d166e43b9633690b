"""Single-threaded FP32 GEMM: tilerun's GEMM kernel vs numpy.matmul (OpenBLAS, 1 thread).

Shapes: square 256/512/1024/2048 and the GEMM shapes of ResNet-50's
convolutions (``M`` = output channels, ``N`` = output pixels, ``K`` = input
channels x taps). tilerun runs its ``f32_gemm`` tile kernel as one tile on
plain row-major ``A`` and ``B`` (so it packs both itself), and as
``gemm_tile`` with ``A`` pre-packed in panels the way the engine holds conv and
Gemm weights (packed once at compile time; ``B`` plain, like an activation);
numpy runs under ``threadpoolctl`` limited to one BLAS thread. As pytest-benchmark tests, both engines of a shape share a
``benchmark.group``. ``python benchmarks/test_gemm.py --summary`` measures
them interleaved in one run and prints GFLOP/s and the ratio.
"""
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import numba  # noqa: E402
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from tilerun.kernels.abi import call_tile  # noqa: E402
from tilerun.kernels.gemm import GEMM, MR, epilogue, f32_gemm, gemm_tile, scratch_floats  # noqa: E402
from tilerun.plan import aligned_bytes  # noqa: E402

SQUARE = [(n, n, n) for n in (256, 512, 1024, 2048)]
# (M, N, K) of ResNet-50 convolutions at batch 1: 1x1 and 3x3 (im2col) layers of each stage.
RESNET50 = [(64, 3136, 64), (64, 3136, 576), (256, 3136, 64), (128, 784, 1152), (512, 784, 128),
            (256, 196, 2304), (1024, 196, 256), (512, 49, 4608), (2048, 49, 512)]
SHAPES = SQUARE + RESNET50


@numba.njit(nogil=True)
def _run(fn, params, scratch):
    return call_tile(fn, params, 0, scratch)


@numba.njit(nogil=True)
def _run_packed(a, b, c, scratch, ep, m, n, k):
    return gemm_tile(a, 1, MR, k * MR, m, b, n, 0, n, k, c, n, scratch, ep, ep, 0, 0, c, False)


def _aligned(a):
    """A copy of ``a`` starting on a 64-byte boundary, as the engine's arena and weights are."""
    a = np.asarray(a)
    out = aligned_bytes(a.nbytes).view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


class TileGemm:
    """``Y = A @ B`` through the ``f32_gemm`` kernel as one tile on one thread."""

    def __init__(self, a, b):
        m, k = a.shape
        n = b.shape[1]
        self.a, self.b = _aligned(np.asarray(a, np.float32)), _aligned(np.asarray(b, np.float32))
        self.y = _aligned(np.zeros((m, n), np.float32))
        self.offs = np.zeros(2, np.int64)
        self.scratch = _aligned(np.zeros(scratch_floats(), np.float32))
        # The kernel's declared row, packed as the plan builder packs it (addresses in the tensor slots).
        ins, outs, params = f32_gemm.pack(dict(
            a=self.a.ctypes.data, b=self.b.ctypes.data, c=None, offs=self.offs.ctypes.data, y=self.y.ctypes.data,
            m=m, n=n, k=k, sai=k, sak=1, ldb=n, sci=0, scj=0, mb=m, nb=n, n_mblk=1, n_nblk=1, bpk=0, ep=epilogue()))
        self.params = np.array([t or 0 for t in ins + outs] + params, np.int64)
        self.ep = self.params.ctypes.data + 8 * GEMM.ep  # the EPILOGUE struct, for gemm_tile itself
        self.fn = f32_gemm.address

    def __call__(self):
        _run(self.fn, self.params.ctypes.data, self.scratch.ctypes.data)
        return self.y


class PackedGemm(TileGemm):
    """The same product through ``gemm_tile`` with ``A`` pre-packed in ``MR``-row panels, as the engine holds
    conv and Gemm weights (packed once at compile time); ``B`` stays plain, like an activation."""

    def __init__(self, a, b):
        super().__init__(a, b)
        m, k = a.shape
        nblk = -(-m // MR)
        pa = np.zeros((nblk * MR, k), np.float32)
        pa[:m] = a
        self.ap = _aligned(np.ascontiguousarray(pa.reshape(nblk, MR, k).transpose(0, 2, 1)))
        self.shape = (m, b.shape[1], k)

    def __call__(self):
        m, n, k = self.shape
        _run_packed(self.ap.ctypes.data, self.b.ctypes.data, self.y.ctypes.data, self.scratch.ctypes.data,
                    self.ep, m, n, k)
        return self.y


def _operands(m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    a = _aligned(rng.standard_normal((m, k)).astype(np.float32))
    return a, _aligned(rng.standard_normal((k, n)).astype(np.float32))


def _name(shape):
    return "x".join(map(str, shape))


try:
    import pytest
except ImportError:  # summary mode needs no pytest
    pytest = None

if pytest is not None:
    @pytest.mark.parametrize("shape", SHAPES, ids=_name)
    @pytest.mark.parametrize("engine", ["tilerun", "tilerun_packed_a", "numpy"])
    def test_gemm(benchmark, engine, shape):
        """One engine on one GEMM shape, single-threaded."""
        benchmark.group = f"gemm {_name(shape)}"
        benchmark.extra_info["gflop"] = 2 * np.prod(shape) / 1e9
        a, b = _operands(*shape)
        with threadpool_limits(1):
            fn = {"tilerun": TileGemm, "tilerun_packed_a": PackedGemm}.get(engine, lambda a, b: (lambda: a @ b))(a, b)
            np.testing.assert_allclose(fn(), a @ b, rtol=1e-3, atol=1e-3 * np.sqrt(shape[2]))
            benchmark(fn)


def summary(rounds=7):
    """Print shape, tilerun (plain A, packed A) and numpy GFLOP/s (medians, interleaved) and the ratios."""
    print(f"single thread, median of {rounds} interleaved rounds; ratio = tilerun / numpy throughput")
    print(f"{'M x N x K':<18}{'tilerun':>9}{'packed-A':>10}{'numpy':>8}{'ratio':>8}{'ratio packed-A':>16}")
    with threadpool_limits(1):
        for shape in SHAPES:
            a, b = _operands(*shape)
            engines = [TileGemm(a, b), PackedGemm(a, b), lambda: a @ b]
            for f in engines:
                f()
            reps = max(1, int(4e8 / (2 * np.prod(shape))))
            times = [[] for _ in engines]
            for _ in range(rounds):
                for f, acc in zip(engines, times):
                    t = time.perf_counter()
                    for _ in range(reps):
                        f()
                    acc.append((time.perf_counter() - t) / reps)
            flop = 2 * np.prod(shape) / 1e9
            ta, tp, tn = (statistics.median(t) for t in times)
            print(f"{_name(shape):<18}{flop / ta:>9.1f}{flop / tp:>10.1f}{flop / tn:>8.1f}{tn / ta:>8.2f}{tn / tp:>16.2f}")


if __name__ == "__main__":
    if "--summary" in sys.argv:
        summary()
    else:
        print("usage: python benchmarks/test_gemm.py --summary")
