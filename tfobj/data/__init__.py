"""tfobj.data."""
