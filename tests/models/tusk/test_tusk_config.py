"""TUSKConfig and its presets against the seed's Table 10, and its refusals."""
import dataclasses

import pytest

from tfobj.models.tusk.tusk_config import TUSK_PRESETS, TUSK_TRAINING, TUSKConfig

# Table 10 of the seed (003), column by column: K, M, B, the loss coefficients, batch size.
TABLE_10 = {
    "mnist": dict(num_keypoints=9, num_prototypes=10, kernel_size=13, batch_size=40),
    "clevr6": dict(num_keypoints=6, num_prototypes=48, kernel_size=21, batch_size=64),
    "tetrominoes": dict(num_keypoints=3, num_prototypes=114, kernel_size=27, batch_size=76),
}


@pytest.mark.parametrize("name", sorted(TABLE_10))
def test_presets_are_table_10(name):
    config, train, expected = TUSK_PRESETS[name], TUSK_TRAINING[name], TABLE_10[name]
    assert (config.num_keypoints, config.num_prototypes, config.kernel_size) == \
        (expected["num_keypoints"], expected["num_prototypes"], expected["kernel_size"])
    assert train.batch_size == expected["batch_size"]
    assert train.learning_rate == 1e-3 and config.prototype_learning_rate == 0.1  # "(all)"
    assert config.gmm_variance == 4e-4 and config.reconstruction_weight == 1 and config.cluster_weight == 0.01
    assert config.equivariance_heatmap_weight == 0.01 and config.equivariance_features_weight == 100
    assert config.alpha_blending == (name != "mnist")  # Table 9: the alpha-blending decoder for object data


def test_default_is_mnist_and_preset_applies_changes():
    assert TUSKConfig() == TUSK_PRESETS["mnist"]
    changed = TUSKConfig.preset("tetrominoes", num_keypoints=4)
    assert changed.num_keypoints == 4 and changed.num_prototypes == 114
    with pytest.raises(ValueError, match="unknown TUSK preset 'clevr10'"):
        TUSKConfig.preset("clevr10")


@pytest.mark.parametrize("change, message", [
    (dict(kernel_size=12), "kernel_size must be an odd positive integer"),
    (dict(num_keypoints=0), "num_keypoints must be a positive integer"),
    (dict(num_prototypes=True), "num_prototypes must be a positive integer"),
    (dict(groups=5), "groups must divide base_width"),
    (dict(inner_prototype_steps=-1), "inner_prototype_steps must be an integer >= 0"),
    (dict(gmm_variance=0.0), "gmm_variance must be > 0"),
    (dict(cluster_weight=-1.0), "cluster_weight must be >= 0"),
    (dict(prototype_beta_1=1.0), r"prototype_beta_1 must be in \[0, 1\)"),
    (dict(tps_warp=(1.0, 0.1)), "tps_warp must hold 5 numbers"),
    (dict(tps_warp=(0.0, 0.1, 0.1, 0.1, 0.1)), "scale must be > 0"),
    (dict(border="clip"), "border"),
])
def test_refuses_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TUSKConfig(), **change)


def test_tps_tuples_round_trip_as_floats():
    config = dataclasses.replace(TUSKConfig(), tps_warp=[1, 0, 0, 0, 0])  # as JSON gives a list of ints
    assert config.tps_warp == (1.0, 0.0, 0.0, 0.0, 0.0)
