"""Assets, one module per loop stage."""
