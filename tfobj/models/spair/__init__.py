"""SPAIR."""
