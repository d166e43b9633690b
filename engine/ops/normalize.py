"""normalize lowerings (to be written)."""
