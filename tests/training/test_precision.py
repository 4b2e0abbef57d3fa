"""The precision / XLA switches of the training entry points."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfobj import data
from tfobj.experiments.spair import fit_spair
from tfobj.models.spair.spair_config import SPAIRConfig
from tfobj.training import precision
from tfobj.training.optimizers import AdamWithGradientNoise
from tfobj.training.precision import dtype_policy, jit_compile
from tfobj.training.train_config import TrainConfig


@pytest.mark.parametrize("gpus, expected", [
    ([], ["float32", "float32", "mixed_bfloat16"]),
    (["GPU:0"], ["mixed_float16", "float32", "mixed_float16"]),
])
def test_dtype_policy_with_and_without_a_gpu(monkeypatch, gpus, expected):
    """Both branches, whatever this machine has: the device list is replaced by a stand-in."""
    monkeypatch.setattr(precision.tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    assert [dtype_policy(p) for p in ("auto", "float32", "mixed")] == expected
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
                       encoder_hidden=(8, 8), decoder_hidden=(8, 8), num_what=4)
    train_config = TrainConfig(steps=4, eval_every=2, batch_size=4, gradient_noise=1e-3, precision="mixed", xla="on")
    images = data.ScatteredMNISTConfig(image_size=(24, 24), max_digits=2)
    train = data.scattered_mnist(images, "train", 16)
    val = data.scattered_mnist(images, "val", 4)
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this test checks the CPU policy (mixed_bfloat16)")
    result = fit_spair(tiny, train_config, train["images"], val)
    model = result.model
    assert model.dtype_policy.name == "mixed_bfloat16" and model.jit_compile
    assert isinstance(model.optimizer, AdamWithGradientNoise)  # (its step: the best checkpoint's, reloaded)
    assert len(result.history) == 2 and all(np.isfinite(entry["loss"]) for entry in result.history)
    assert keras.backend.standardize_dtype(model.backbone(train["images"][:1]).dtype) == "bfloat16"
