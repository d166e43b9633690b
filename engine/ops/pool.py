"""pool lowerings (to be written)."""
