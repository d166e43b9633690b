"""movement lowerings (to be written)."""
