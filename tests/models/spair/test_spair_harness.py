"""SPAIR and its layers through the shared harness (tests/harness.py): config round trips, eager vs
tf.function, the output contract, a fit step, and `.keras` save / load in a fresh process."""
import dataclasses

import numpy as np
import pytest

import harness
from tfobj.layers.mlp import MLP
from tfobj.layers.padded_conv_backbone import PaddedConvBackbone
from tfobj.models.spair.spair import LOSS_KEYS, SPAIR
from tfobj.models.spair.spair_config import SPAIRConfig
from tfobj.models.spair.spair_layers import ObjectDecoder

# Non-default values everywhere, so that a config that drops or defaults a field fails the round trip.
TINY = SPAIRConfig(backbone_filters=8, backbone_features=6, cell_hidden=(8, 6), passthrough_features=4,
                   encoder_hidden=(8, 4), decoder_hidden=(6, 8), num_what=3, concrete_temperature=0.7,
                   training_wheels_steps=0, background="learn_solid", importance="original")
IMAGES = np.random.default_rng(0).random((2, 12, 24, 3)).astype(np.float32)  # a 1x2 grid: N = 2 cells


def test_spair_config_round_trip():
    harness.check_config_round_trip(SPAIR, {"config": TINY, "seed": 5, "name": "my_spair", "dtype": "float32"}, IMAGES)


def test_spair_eager_matches_tf_function():
    model = SPAIR(TINY, seed=1)
    harness.check_eager_matches_tf_function(model, IMAGES, training=False)


def test_spair_output_contract():
    n, a = 2, TINY.num_what
    contract = {"reconstruction": ((2, 12, 24, 3), "float32"), "boxes": ((2, n, 4), "float32"),
                "scores": ((2, n), "float32"), "z_pres": ((2, n), "float32"), "num_objects": ((2,), "int32"),
                "z_what": ((2, n, a), "float32"), "z_depth": ((2, n), "float32"),
                "appearance": ((2, n, 14, 14, 3), "float32"), "alpha": ((2, n, 14, 14, 1), "float32")}
    model = SPAIR(TINY, seed=1)
    harness.check_output_contract(model, IMAGES, contract, training=False)
    harness.check_output_contract(model, IMAGES, contract, training=True)


def test_spair_fit_step():
    harness.check_fit_step(SPAIR(TINY, seed=1), {"images": IMAGES}, LOSS_KEYS)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", pytest.param("float32", marks=pytest.mark.slow)])
def test_spair_keras_file_in_fresh_process(tmp_path, policy):
    model = SPAIR(TINY, seed=1, dtype=policy)
    model(IMAGES)
    model.anneal(5000)  # annealed values other than a new model's
    harness.check_keras_file_in_fresh_process(model, IMAGES, tmp_path, atol=1e-5 if policy == "float32" else 1e-2)


@pytest.mark.parametrize("cls, kwargs, inputs", [
    (MLP, {"hidden": (5, 3), "output_units": 2, "name": "mlp"}, np.ones((2, 4), np.float32)),
    (PaddedConvBackbone, {"filters": 4, "output_features": 3, "strided_layers": ((4, 2), (3, 3)),
                          "num_pointwise": 2}, np.ones((1, 12, 18, 3), np.float32)),
    (ObjectDecoder, {"decoder_hidden": (4,), "object_size": (5, 6), "appearance_logit_scale": 1.5,
                     "alpha_logit_scale": 0.2, "alpha_logit_bias": 3.0, "channels": 1}, np.ones((2, 3, 4), np.float32)),
])
def test_layer_config_round_trip(cls, kwargs, inputs):
    harness.check_config_round_trip(cls, kwargs, inputs)


def test_cell_encoder_config_round_trip():
    """The cell encoder takes flat arguments (SPAIR passes its config's fields) and round-trips them."""
    from tfobj.models.spair.spair_layers import SPAIRCellEncoder

    kwargs = dict(num_what=3, cell_hidden=(4,), passthrough_features=2, encoder_hidden=(5,), object_size=(6, 7),
                  cell_size=12, anchor_size=(30.0, 20.0), box_bounds=(-1.0, 2.0), lateral_context=False)
    layer = SPAIRCellEncoder(**kwargs)
    clone = SPAIRCellEncoder.from_config(layer.get_config())
    assert {key: getattr(clone, key) for key in kwargs} == {key: getattr(layer, key) for key in kwargs}
    assert {key: harness._plain(layer.get_config()[key]) for key in kwargs} == harness._plain(kwargs)


def test_spair_from_config_rejects_unknown_fields():
    config = SPAIR(TINY).get_config()
    config["config"] = dict(dataclasses.asdict(TINY), num_wat=3)
    with pytest.raises(ValueError, match="num_wat"):
        SPAIR.from_config(config)
