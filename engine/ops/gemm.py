"""gemm lowerings (to be written)."""
