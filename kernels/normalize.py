"""normalize kernels (to be written)."""
