"""movement kernels (to be written)."""
