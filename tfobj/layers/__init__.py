"""Keras layers shared by two or more tfobj models."""
