"""conv lowerings (to be written)."""
