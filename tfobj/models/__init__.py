"""tfobj.models."""
