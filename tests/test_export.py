"""SavedModel export through each model's serving endpoints: reload without tfobj in a fresh process, two
batch and two image sizes; SPAIR and ConnComp (SILOT, LAVAE and TUSK: their test files, through the same
`harness.served_in_fresh_process`)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import harness
from tfobj import export_saved_model
from tfobj.models.baselines.conncomp import ConnComp
from tfobj.models.spair.spair import SERVING_KEYS, SPAIR
from tiny import TINY_SPAIR

TINY = TINY_SPAIR
KEYS = ("boxes", "scores", "z_pres", "num_objects", "reconstruction")  # the SPAIR issue's signature


@pytest.mark.slow
def test_export_reloads_without_tfobj_and_matches(tmp_path):
    model = SPAIR(TINY, seed=0)
    rng = np.random.default_rng(0)
    inputs = {"b2_48x48": rng.random((2, 48, 48, 3), np.float32), "b5_96x72": rng.random((5, 96, 72, 3), np.float32)}
    model(inputs["b2_48x48"])
    export_saved_model(model, tmp_path / "spair")
    outputs = run_reload(tmp_path, tmp_path / "spair", inputs)
    for name, images in inputs.items():
        expected = model(images, training=False)
        for key in KEYS:
            np.testing.assert_allclose(outputs[f"{name}/{key}"], expected[key].numpy(), atol=1e-5, err_msg=key)
    cells = {"b2_48x48": (2, 16), "b5_96x72": (5, 48)}
    for name, shape in cells.items():
        assert outputs[f"{name}/boxes"].shape == shape + (4,)

    cli = Path(sys.executable).parent / "saved_model_cli"
    shown = subprocess.run([str(cli), "show", "--dir", str(tmp_path / "spair"), "--tag_set", "serve",
                            "--signature_def", "serving_default"], capture_output=True, text=True, check=True).stdout
    assert "images" in shown and "(-1, -1, -1, 3)" in shown
    for key in KEYS:
        assert key in shown


def run_reload(tmp_path, model_dir, inputs) -> dict:
    return harness.served_in_fresh_process(model_dir, inputs, tmp_path, argument="images")


def test_spair_signature_keys_are_the_issue_s():
    assert SERVING_KEYS == KEYS


@pytest.mark.slow
def test_conncomp_exports_through_its_endpoint(tmp_path):
    """export_saved_model is not SPAIR's: ConnComp (a layer without weights) exports through its own endpoint,
    and the reloaded signature gives the boxes and counts of the in-process layer."""
    layer = ConnComp(threshold=0.5)
    images = np.zeros((3, 20, 16, 3), np.float32)
    images[0, 2:5, 3:7] = 1.0
    images[0, 10:12, 10:12] = 1.0
    images[2, 0:4, 0:2] = 0.8
    export_saved_model(layer, tmp_path / "conncomp")
    outputs = run_reload(tmp_path, tmp_path / "conncomp", {"x": images})
    expected = layer(images)
    np.testing.assert_array_equal(outputs["x/num_objects"], [2, 0, 1])
    for key in ("boxes", "scores", "centroids", "colours", "num_objects"):
        np.testing.assert_allclose(outputs[f"x/{key}"], expected[key].numpy(), err_msg=key)


def test_export_requires_a_built_model_with_a_serve_endpoint(tmp_path):
    with pytest.raises(ValueError, match="must be built"):
        export_saved_model(SPAIR(TINY), tmp_path / "x")
    import keras

    plain = keras.Sequential([keras.layers.Dense(2)])
    plain(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="declares no 'serve' endpoint"):
        export_saved_model(plain, tmp_path / "y")
