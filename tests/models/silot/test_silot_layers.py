"""SILOT's spatial attention layers against plain numpy loops of supplement B.1 and B.2, and the harness's
config round trip."""
import math

import numpy as np
import pytest

import harness
from tfobj.models.silot.silot_layers import DiscoveryAttention, PropagationAttention


def mlp_numpy(mlp, x):
    """The MLP with its own weights, in float64: ReLU hidden layers, linear output."""
    for index, dense in enumerate(mlp.dense_layers):
        x = x @ dense.kernel.numpy().astype(np.float64) + dense.bias.numpy()
        if index < len(mlp.dense_layers) - 1:
            x = np.maximum(x, 0.0)
    return x


def gauss(relative, std):
    return math.exp(-0.5 * float(np.sum(np.square(relative))) / std ** 2) / (2 * math.pi * std ** 2)


def test_discovery_attention_is_b1():
    rng = np.random.default_rng(0)
    objects = rng.normal(size=(2, 3, 5)).astype(np.float32)
    positions = rng.uniform(0, 0.75, size=(2, 3, 2)).astype(np.float32)  # anchor units: a 36 px image
    layer = DiscoveryAttention(hidden=(7, 6), output_size=4, std=0.1, cell_size=0.25)
    got = layer(objects, positions, grid_shape=(3, 2)).numpy()
    assert got.shape == (2, 3, 2, 4)
    for b in range(2):
        for i in range(3):
            for j in range(2):
                centre = np.array([(i + 0.5) * 0.25, (j + 0.5) * 0.25])
                expected = sum(gauss(positions[b, k] - centre, 0.1)
                               * mlp_numpy(layer.mlp, np.concatenate([objects[b, k], positions[b, k] - centre]))
                               for k in range(3))
                # float32 layer against a float64 loop: relative error of float32 MLPs and exponentials.
                np.testing.assert_allclose(got[b, i, j], expected, rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize("attention", [True, False])
def test_propagation_attention_is_b2(attention):
    rng = np.random.default_rng(1)
    objects = rng.normal(size=(2, 4, 5)).astype(np.float32)
    positions = rng.uniform(0, 0.4, size=(2, 4, 2)).astype(np.float32)
    layer = PropagationAttention(object_hidden=(6, 5), spatial_hidden=(7, 3), output_size=4, std=0.1,
                                 attention=attention)
    got = layer(objects, positions).numpy()
    for b in range(2):
        for target in range(4):
            own = mlp_numpy(layer.object_mlp, np.concatenate([objects[b, target], positions[b, target]]))
            expected = own.copy()
            if attention:
                for k in range(4):
                    relative = positions[b, k] - positions[b, target]
                    expected += gauss(relative, 0.1) * mlp_numpy(
                        layer.spatial_mlp, np.concatenate([objects[b, k], relative, own]))
            np.testing.assert_allclose(got[b, target], expected, rtol=2e-4, atol=1e-4)


def test_far_objects_do_not_contribute():
    """The kernel's σ is 0.1 anchors (4.8 px): an object 2 anchors away adds a weight of ~e^-200."""
    layer = PropagationAttention(output_size=3)
    objects = np.zeros((1, 2, 4), np.float32)
    near = layer(objects, np.array([[[0.0, 0.0], [0.05, 0.0]]], np.float32)).numpy()
    far = layer(objects, np.array([[[0.0, 0.0], [2.0, 0.0]]], np.float32)).numpy()
    alone = layer(objects[:, :1], np.zeros((1, 1, 2), np.float32)).numpy()
    np.testing.assert_allclose(far[0, 0], alone[0, 0], rtol=1e-6)
    assert not np.allclose(near[0, 0], alone[0, 0], rtol=1e-3)


def test_config_round_trips():
    harness.check_config_round_trip(
        PropagationAttention, {"object_hidden": (5,), "spatial_hidden": (4, 3), "output_size": 2, "std": 0.2,
                               "attention": False}, np.ones((1, 3, 4), np.float32), {"positions": np.zeros((1, 3, 2),
                                                                                                             np.float32)})


def test_presence_weights_each_object_s_term():
    """With `presence`, object k's term is weighted by z_pres_k (the numpy loops above, times z_pres): an absent
    object adds nothing, in discovery (B.1) and in propagation (B.2)."""
    rng = np.random.default_rng(2)
    objects = rng.normal(size=(1, 3, 4)).astype(np.float32)
    positions = rng.uniform(0, 0.3, size=(1, 3, 2)).astype(np.float32)
    presence = np.array([[1.0, 0.0, 0.4]], np.float32)
    layer = PropagationAttention(object_hidden=(5,), spatial_hidden=(6,), output_size=3, std=0.1)
    got = layer(objects, positions, presence=presence).numpy()
    for target in range(3):
        own = mlp_numpy(layer.object_mlp, np.concatenate([objects[0, target], positions[0, target]]))
        expected = own + sum(presence[0, k] * gauss(positions[0, k] - positions[0, target], 0.1) * mlp_numpy(
            layer.spatial_mlp, np.concatenate([objects[0, k], positions[0, k] - positions[0, target], own]))
            for k in range(3))
        np.testing.assert_allclose(got[0, target], expected, rtol=2e-4, atol=1e-4)
    disc = DiscoveryAttention(hidden=(5,), output_size=3, std=0.1, cell_size=0.25)
    with_absent = disc(objects, positions, grid_shape=(2, 2), presence=presence).numpy()
    without = disc(objects[:, [0, 2]], positions[:, [0, 2]], grid_shape=(2, 2), presence=presence[:, [0, 2]]).numpy()
    np.testing.assert_allclose(with_absent, without, rtol=1e-6, atol=1e-7)
    assert not np.allclose(disc(objects, positions, grid_shape=(2, 2)).numpy(), with_absent, atol=1e-4)
