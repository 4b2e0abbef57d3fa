"""tfobj.metrics."""
