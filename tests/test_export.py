"""SavedModel export: reload without tfobj in a fresh process, two batch and two image sizes."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfobj.export import export_saved_model
from tfobj.models.spair.spair import SPAIR
from tfobj.models.spair.spair_config import SPAIRConfig

TINY = SPAIRConfig(backbone_filters=8, backbone_features=8, cell_hidden=(8, 8), passthrough_features=4,
                   encoder_hidden=(8, 8), decoder_hidden=(8, 8), num_what=4)
KEYS = ("boxes", "scores", "z_pres", "num_objects", "reconstruction")

RELOAD = """
import sys
sys.modules["tfobj"] = None  # this process must not be able to import tfobj
try:
    import tfobj  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("tfobj is importable")
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
inputs = np.load(sys.argv[2])
outputs = {}
for name in inputs.files:
    for key, value in serve(images=tf.constant(inputs[name])).items():
        outputs[f"{name}/{key}"] = value.numpy()
np.savez(sys.argv[3], **outputs)
"""


@pytest.mark.slow
def test_export_reloads_without_tfobj_and_matches(tmp_path):
    model = SPAIR(TINY, seed=0)
    rng = np.random.default_rng(0)
    inputs = {"b2_48x48": rng.random((2, 48, 48, 3), np.float32), "b5_96x72": rng.random((5, 96, 72, 3), np.float32)}
    model(inputs["b2_48x48"])
    export_saved_model(model, tmp_path / "spair")
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = tmp_path / "reload.py"
    script.write_text(RELOAD)
    subprocess.run([sys.executable, str(script), str(tmp_path / "spair"), str(tmp_path / "inputs.npz"),
                    str(tmp_path / "outputs.npz")], check=True, cwd=tmp_path)
    outputs = np.load(tmp_path / "outputs.npz")
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


def test_export_requires_a_built_model(tmp_path):
    with pytest.raises(ValueError, match="must be built"):
        export_saved_model(SPAIR(TINY), tmp_path / "x")
