"""tfobj.ops."""
