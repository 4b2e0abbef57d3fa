"""TUSK's prototype bank and decoders (`tfobj/models/tusk/tusk_decoders.py`).

References: numpy recomputations of the assignment (mean squared distance, softmin, argmin) on the bank's own
weights, of the sigmoid decoder and of the alpha blending (sigmoid colours, softmax over K, weighted sum) from
the inner U-Net's outputs, the latter called on each keypoint's map separately; moments of the N(0, 1)
initialiser; the shared harness for config round trips and eager vs `tf.function`.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.harness import check_config_round_trip, check_eager_matches_tf_function
from tfobj.models.tusk.tusk_decoders import AlphaBlendDecoder, PrototypeBank, SparseDecoder, alpha_blend
from tfobj.models.tusk.tusk_math import gaussian_splat

SMALL = dict(base_width=4, groups=2)  # a quick U-Net


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def splats(batch=2, keypoints=3, size=8, depth=4, seed=0):
    rng = np.random.default_rng(seed)
    splat = gaussian_splat(rng.uniform(0, size - 1, (batch, keypoints, 2)).astype(np.float32),
                           rng.standard_normal((batch, keypoints, depth)).astype(np.float32),
                           rng.uniform(0.5, 1.0, (batch, keypoints)).astype(np.float32), size, size, variance=1.0)
    return {key: value.numpy() for key, value in splat.items()}


# --- prototype bank ---------------------------------------------------------------------------------------------


def test_prototype_bank_reads_unit_prototypes_of_a_standard_normal_weight():
    bank = PrototypeBank(num_prototypes=200, dim=32)
    weights = bank.prototype_weights.numpy()
    assert weights.shape == (200, 32) and [w.name for w in bank.trainable_weights] == ["prototypes"]
    # torch.randn: N(0, 1) entries (6400 values: mean within 5 standard errors, std within 3 %)
    assert abs(weights.mean()) < 5 / np.sqrt(weights.size) and abs(weights.std() - 1.0) < 0.03
    np.testing.assert_allclose(bank.prototypes().numpy(), weights / np.linalg.norm(weights, axis=1, keepdims=True),
                               rtol=1e-6)


def test_prototype_bank_assigns_as_a_numpy_recomputation():
    bank = PrototypeBank(num_prototypes=5, dim=4, temperature=20.0)
    descriptors = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=-1, keepdims=True)
    out = bank(descriptors)
    prototypes = bank.prototype_weights.numpy().astype(np.float64)
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    distances = np.mean((descriptors[..., None, :] - prototypes) ** 2, axis=-1)  # [2, 3, 5]
    np.testing.assert_allclose(out["probabilities"].numpy(), softmax(-20.0 * distances, -1), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(out["labels"].numpy(), distances.argmin(-1))
    probabilities, labels = bank.assign(descriptors)
    np.testing.assert_array_equal(labels.numpy(), out["labels"].numpy())
    with tf.GradientTape() as tape:  # the cluster loss reaches the prototypes' weight
        probabilities, labels = bank.assign(descriptors)
        loss = -tf.reduce_mean(tf.math.log(tf.gather(probabilities, labels, batch_dims=2)))
    gradient = tape.gradient(loss, bank.prototype_weights)
    assert gradient is not None and np.any(gradient.numpy() != 0)


def test_prototype_bank_keeps_float32_prototypes_under_mixed_precision():
    bank = PrototypeBank(num_prototypes=3, dim=4, dtype="mixed_float16")
    out = bank(np.ones((2, 4), np.float16))
    assert bank.prototypes().dtype == tf.float32 and out["probabilities"].dtype == tf.float32
    assert bank.prototype_weights.dtype == "float32"


def test_prototype_bank_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_prototypes"):
        PrototypeBank(num_prototypes=0, dim=4)
    with pytest.raises(ValueError, match="temperature"):
        PrototypeBank(num_prototypes=3, dim=4, temperature=0.0)
    with pytest.raises(ValueError, match="d = dim = 4"):
        PrototypeBank(num_prototypes=3, dim=4)(np.ones((2, 5), np.float32))


def test_prototype_bank_round_trips_its_config():
    check_config_round_trip(PrototypeBank, dict(num_prototypes=6, dim=4, temperature=10.0),
                            np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32))


# --- sparse decoder ---------------------------------------------------------------------------------------------


def test_sparse_decoder_is_a_sigmoid_of_the_unet_of_the_summed_splat():
    decoder = SparseDecoder(**SMALL)
    splat = splats()["sum"]  # [2, 8, 8, 4]
    out = decoder(splat)
    assert set(out) == {"reconstruction"} and out["reconstruction"].shape == (2, 8, 8, 3)
    np.testing.assert_allclose(out["reconstruction"].numpy(), sigmoid(decoder.unet(splat).numpy()), rtol=1e-6)
    assert decoder.unet.output_channels == 3


def test_sparse_decoder_round_trips_its_config_and_compiles():
    splat = splats()["sum"]
    clone = check_config_round_trip(SparseDecoder, dict(SMALL, align_corners=True, image_channels=1), splat)
    check_eager_matches_tf_function(clone, splat)


# --- alpha blending ---------------------------------------------------------------------------------------------


def test_alpha_blend_decoder_blends_the_unet_outputs_of_every_keypoint():
    decoder = AlphaBlendDecoder(**SMALL)
    splat = splats(batch=2, keypoints=3)["per_keypoint"]  # [2, 3, 8, 8, 4]
    out = decoder(splat)
    assert out["reconstruction"].shape == (2, 8, 8, 3)
    assert out["masks"].shape == (2, 3, 8, 8) and out["rgb"].shape == (2, 3, 8, 8, 3)
    # the same U-Net, called on each keypoint's R_k alone
    raw = np.stack([decoder.unet(splat[:, k]).numpy().astype(np.float64) for k in range(3)], axis=1)  # [2,3,8,8,4]
    rgb = sigmoid(raw[..., :3])
    masks = softmax(raw[..., 3], axis=1)
    np.testing.assert_allclose(out["rgb"].numpy(), rgb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["masks"].numpy(), masks, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["reconstruction"].numpy(), np.sum(masks[..., None] * rgb, axis=1), atol=1e-6)
    np.testing.assert_allclose(out["masks"].numpy().sum(axis=1), 1.0, atol=1e-6)
    assert out["reconstruction"].numpy().min() >= 0 and out["reconstruction"].numpy().max() <= 1


def test_alpha_blend_decoder_round_trips_its_config_and_compiles():
    splat = splats(keypoints=2)["per_keypoint"]
    clone = check_config_round_trip(AlphaBlendDecoder, dict(SMALL, align_corners=False, image_channels=3), splat)
    check_eager_matches_tf_function(clone, splat)
    symbolic = clone(keras.Input((None, 8, 8, 4)))
    assert tuple(symbolic["masks"].shape) == (None, None, 8, 8)


def test_alpha_blend_decoder_rejects_a_summed_splat():
    with pytest.raises(ValueError, match="rank 5"):
        AlphaBlendDecoder(**SMALL)(splats()["sum"])


def test_alpha_blend_matches_numpy_and_checks_shapes():
    rng = np.random.default_rng(3)
    rgb_logits, alpha_logits = rng.standard_normal((2, 4, 3, 5, 3)), 3 * rng.standard_normal((2, 4, 3, 5))
    out = alpha_blend(rgb_logits, alpha_logits)
    masks = softmax(alpha_logits, axis=1)
    np.testing.assert_allclose(out["masks"].numpy(), masks, rtol=1e-12)
    np.testing.assert_allclose(out["reconstruction"].numpy(),
                               np.einsum("bkhw,bkhwc->bhwc", masks, sigmoid(rgb_logits)), rtol=1e-12)
    # a keypoint whose alpha logit dominates at a pixel paints that pixel with its colour
    alpha_logits[0, 2, 1, 1] = 60.0
    np.testing.assert_allclose(alpha_blend(rgb_logits, alpha_logits)["reconstruction"].numpy()[0, 1, 1],
                               sigmoid(rgb_logits[0, 2, 1, 1]), atol=1e-12)
    with pytest.raises(ValueError, match="agree"):
        alpha_blend(rgb_logits, alpha_logits[:, :3])
