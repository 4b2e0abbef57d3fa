"""The precision / XLA switches of the training entry points (CPU: no GPU is visible)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfobj import data, experiment
from tfobj.models.spair.spair_config import SPAIRConfig
from tfobj.training.optimizers import AdamWithGradientNoise
from tfobj.training.precision import dtype_policy, jit_compile


def test_dtype_policy_on_cpu():
    assert not tf.config.list_physical_devices("GPU")
    assert [dtype_policy(p) for p in ("auto", "float32", "mixed")] == ["float32", "float32", "mixed_bfloat16"]
    with pytest.raises(ValueError, match="precision must be one of"):
        dtype_policy("fp16")


def test_jit_compile_setting():
    assert [jit_compile(x) for x in ("auto", "on", "off")] == ["auto", True, False]
    with pytest.raises(ValueError, match="xla must be one of"):
        jit_compile("yes")


@pytest.mark.slow
def test_fit_spair_with_mixed_precision_xla_and_gradient_noise(tmp_path, monkeypatch):
    """The entry point's switches reach the model: bfloat16 layers, an XLA train step, the noisy optimizer."""
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path))
    tiny = SPAIRConfig(backbone_filters=8, backbone_features=8, cell_hidden=(8, 8), passthrough_features=4,
                       encoder_hidden=(8, 8), decoder_hidden=(8, 8), num_what=4, batch_size=4, gradient_noise=1e-3)
    config = experiment.SPAIRExperiment(model=tiny, image_size=(24, 24), max_digits=2, steps=4, eval_every=2,
                                        precision="mixed", xla="on")
    images = data.ScatteredMNISTConfig(image_size=(24, 24), max_digits=2)
    train = data.scattered_mnist(images, "train", 16)
    val = data.scattered_mnist(images, "val", 4)
    model, history = experiment.fit_spair(config, train["images"], val)
    assert model.dtype_policy.name == "mixed_bfloat16" and model.jit_compile
    assert isinstance(model.optimizer, AdamWithGradientNoise)  # (its step: the best checkpoint's, reloaded)
    assert np.all(np.isfinite(history.history["loss"])) and len(history.history["val_ap"]) == 2
    assert keras.backend.standardize_dtype(model.backbone(train["images"][:1]).dtype) == "bfloat16"
