"""PaddedConvBackbone: grid size, shift equivariance by one cell, size independence, config."""
import numpy as np
import pytest

from tfobj.layers.padded_conv_backbone import PaddedConvBackbone


@pytest.fixture(scope="module")
def backbone():
    layer = PaddedConvBackbone(filters=16, output_features=8)
    layer(np.zeros((1, 48, 48, 3), np.float32))
    return layer


def test_grid_sizes_and_shared_weights(backbone):
    assert backbone(np.zeros((2, 48, 48, 3), np.float32)).shape == (2, 4, 4, 8)
    assert backbone(np.zeros((1, 96, 96, 3), np.float32)).shape == (1, 8, 8, 8)
    assert backbone(np.zeros((1, 36, 84, 3), np.float32)).shape == (1, 3, 7, 8)
    assert len(backbone.trainable_weights) == 12  # 6 convs x (kernel, bias), whatever the image size


def test_shift_by_one_cell_shifts_the_grid(backbone):
    rng = np.random.default_rng(0)
    image = np.zeros((1, 96, 96, 3), np.float32)
    image[:, 24:72, 24:72] = rng.random((1, 48, 48, 3))
    shifted = np.roll(image, (12, 12), axis=(1, 2))  # the content stays away from the border
    features = backbone(image).numpy()
    features_shifted = backbone(shifted).numpy()
    np.testing.assert_allclose(features_shifted[:, 1:, 1:], features[:, :-1, :-1], atol=1e-5)


def test_cell_features_do_not_depend_on_image_size(backbone):
    """Cell (i, j) sees pixels from (12i, 12j) on, so a 48x48 image inside a 96x96 canvas gives the
    same 4x4 block of features (away from where the 48x48 image's padding would matter)."""
    rng = np.random.default_rng(1)
    small = rng.random((1, 48, 48, 3)).astype(np.float32)
    large = np.zeros((1, 96, 96, 3), np.float32)
    large[:, :48, :48] = small
    np.testing.assert_allclose(backbone(large).numpy()[:, :3, :3], backbone(small).numpy()[:, :3, :3], atol=1e-5)


def test_config_round_trip():
    layer = PaddedConvBackbone(filters=4, output_features=3, strided_layers=((4, 2), (4, 3)), num_pointwise=2)
    clone = PaddedConvBackbone.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.cell_size == 6
