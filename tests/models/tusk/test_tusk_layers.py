"""TUSK's layers (`tfobj/models/tusk/tusk_layers.py`): the U-Net and the keypoint encoder.

References: the U-Net's parameter count in closed form from the architecture (Table 9 / the original
`models/unet.py`: the count PyTorch reports for the original's `UNet(3, 32, 32)`), brute-force NMS/top-K, a
python loop of eq. 5 and of bilinear interpolation on the encoder's own score and feature maps, and the
shared harness for config round trips and eager vs `tf.function`.
"""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.harness import check_config_round_trip, check_eager_matches_tf_function, check_output_contract
from tfobj.models.tusk.tusk_layers import KeypointEncoder, TorchInitConv2D, UNet

SMALL = dict(base_width=8, groups=8, feature_channels=8)  # a quick encoder for the tests


def images(batch=2, height=8, width=16, seed=0):
    return np.random.default_rng(seed).random((batch, height, width, 3)).astype(np.float32)


# --- U-Net ----------------------------------------------------------------------------------------------------


def unet_parameters(in_channels, base, out_channels):
    """Closed form: 7 double conv blocks (3×3 convs with bias, GroupNorm γ and β) + the 1×1 output conv."""
    def conv(k, cin, cout):
        return k * k * cin * cout + cout

    def double(cin, cout):
        return conv(3, cin, cout) + 2 * cout + conv(3, cout, cout) + 2 * cout

    w = base
    down = double(in_channels, w) + double(w, 2 * w) + double(2 * w, 4 * w) + double(4 * w, 8 * w)
    up = double(8 * w + 4 * w, 4 * w) + double(4 * w + 2 * w, 2 * w) + double(2 * w + w, w)
    return down + up + conv(1, w, out_channels)


def test_unet_shapes_and_architecture():
    unet = UNet(base_width=8, output_channels=5, groups=4)
    out = unet(images(2, 16, 24))
    assert out.shape == (2, 16, 24, 5) and out.dtype == tf.float32
    # 7 double conv blocks × (2 kernels, 2 biases, 2 γ, 2 β) + the output conv's kernel and bias
    assert len(unet.trainable_weights) == 58 and not unet.non_trainable_weights
    assert unet.count_params() == unet_parameters(3, 8, 5)
    # the original encoder's U-Net: UNet(in 3, out 32, min_channel 32), GroupNorm(32)
    original = UNet()
    original.build((None, 80, 80, 3))
    assert original.count_params() == unet_parameters(3, 32, 32) == 1_950_720


def test_unet_has_three_pooling_levels():
    unet = UNet(base_width=4, output_channels=2, groups=2)
    assert unet(np.ones((1, 8, 8, 1), np.float32)).shape == (1, 8, 8, 2)  # 8 -> 4 -> 2 -> 1 and back
    for shape in [(1, 12, 12, 1), (1, 16, 12, 1), (1, 4, 8, 1)]:  # 12 = 4·3: the third pool would drop a row
        with pytest.raises(ValueError, match="must be a multiple of 8"):
            UNet(base_width=4, output_channels=2, groups=2)(np.ones(shape, np.float32))
    # built for any size, then called eagerly with a bad one
    anysize = UNet(base_width=4, output_channels=2, groups=2)
    assert anysize(keras.Input((None, None, 1))).shape == (None, None, None, 2)
    with pytest.raises(ValueError, match="image W must be a multiple of 8"):
        anysize(np.ones((1, 8, 20, 1), np.float32))
    # sizes only known at run time: the same rule, checked when run
    flexible = tf.function(lambda x: unet(x), input_signature=[tf.TensorSpec([None, None, None, 1])])
    assert flexible(tf.ones([1, 24, 16, 1])).shape == (1, 24, 16, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 8"):
        flexible(tf.ones([1, 12, 12, 1]))


def test_unet_upsampling_conventions_differ_only_in_the_upsampling():
    x = images(1, 16, 16)
    half_pixel = UNet(base_width=4, output_channels=2, groups=2)
    corners = UNet(base_width=4, output_channels=2, groups=2, align_corners=True)
    half_pixel(x), corners(x)
    corners.set_weights(half_pixel.get_weights())
    assert not np.allclose(half_pixel(x).numpy(), corners(x).numpy(), atol=1e-4)


def test_unet_errors():
    with pytest.raises(ValueError, match="groups must divide base_width"):
        UNet(base_width=12, groups=8)
    with pytest.raises(ValueError, match="output_channels must be a python int >= 1"):
        UNet(output_channels=0)
    with pytest.raises(ValueError, match="align_corners must be a bool"):
        UNet(align_corners="yes")
    with pytest.raises(ValueError, match=r"initialization must be one of \('keras', 'pytorch'\)"):
        UNet(initialization="torch")
    with pytest.raises(ValueError, match=r"UNet expects images \[B, H, W, C\]"):
        UNet(base_width=4, groups=2)(np.ones((8, 8, 1), np.float32))


def test_unet_config_round_trip():
    check_config_round_trip(UNet, dict(base_width=8, output_channels=5, groups=4, align_corners=True,
                                       initialization="pytorch", name="decoder_unet"), images(2, 8, 16))


def test_pytorch_initialization_is_uniform_within_one_over_root_fan_in():
    """The original's initial weights (torch.nn.Conv2d's default): kernel and bias U(±1/√fan_in), fan_in =
    C_in·kh·kw; Keras' default (Glorot kernels, zero biases) otherwise."""
    keras.utils.set_random_seed(0)
    unet = UNet(base_width=8, output_channels=5, groups=4, initialization="pytorch")
    unet(images(1, 8, 16))
    convs = [layer for block in unet.down_blocks + unet.up_blocks for layer in block
             if isinstance(layer, keras.layers.Conv2D)] + [unet.output_conv]
    assert len(convs) == 15 and all(type(conv) is TorchInitConv2D for conv in convs)
    for conv in convs:
        kernel, bias = (w.numpy() for w in conv.weights)
        bound = 1 / math.sqrt(np.prod(kernel.shape[:3]))
        for values in (kernel.ravel(), bias):
            assert np.abs(values).max() <= bound
        # a uniform on ±bound has std bound/√3: 4.5 standard errors (std of the sample std ≈ 0.45·σ/√n)
        np.testing.assert_allclose(kernel.std(), bound / math.sqrt(3), rtol=4.5 * 0.45 / math.sqrt(kernel.size))
        assert np.abs(bias).max() > 0.2 * bound
    plain = UNet(base_width=8, output_channels=5, groups=4)
    plain(images(1, 8, 16))
    assert type(plain.output_conv) is keras.layers.Conv2D and not plain.output_conv.bias.numpy().any()


# --- keypoint encoder -----------------------------------------------------------------------------------------


def brute_force_peaks(scores, kernel_size, num_keypoints):
    """Local maxima of the clipped windows by (−score, raster index), then non-maxima likewise."""
    batch, height, width = scores.shape
    radius = kernel_size // 2
    peaks, valid = np.zeros((batch, num_keypoints, 2), int), np.zeros((batch, num_keypoints), bool)
    for b in range(batch):
        ranked = [[], []]
        for i in range(height):
            for j in range(width):
                window = scores[b, max(0, i - radius):i + radius + 1, max(0, j - radius):j + radius + 1]
                ranked[int(scores[b, i, j] < window.max())].append((-scores[b, i, j], i * width + j, i, j))
        chosen = sorted(ranked[0])[:num_keypoints]
        valid[b, :len(chosen)] = True
        chosen += sorted(ranked[1])[:num_keypoints - len(chosen)]
        peaks[b] = [(i, j) for *_, i, j in chosen]
    return peaks, valid


def eq5(scores, peaks, kernel_size, temperature):
    """Eq. 5 over the in-image cells of each window (border "exclude"), float64."""
    radius = kernel_size // 2
    out = np.zeros(peaks.shape)
    for b, k in np.ndindex(*peaks.shape[:2]):
        r0, c0 = peaks[b, k]
        cells = [(r, c) for r in range(r0 - radius, r0 + radius + 1) for c in range(c0 - radius, c0 + radius + 1)
                 if 0 <= r < scores.shape[1] and 0 <= c < scores.shape[2]]
        weights = np.array([math.exp(scores[b, r, c] / temperature) for r, c in cells])
        out[b, k] = (weights[:, None] * np.array(cells)).sum(0) / weights.sum()
    return out


def bilinear(maps, points):
    """Tent-kernel bilinear interpolation, float64 loop."""
    out = np.zeros(points.shape[:2] + maps.shape[3:])
    for b, k in np.ndindex(*points.shape[:2]):
        for i in range(maps.shape[1]):
            for j in range(maps.shape[2]):
                weight = max(0.0, 1 - abs(points[b, k, 0] - i)) * max(0.0, 1 - abs(points[b, k, 1] - j))
                out[b, k] += weight * maps[b, i, j].astype(np.float64)
    return out


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_encoder_output_contract_and_tf_function():
    encoder = KeypointEncoder(num_keypoints=5, kernel_size=5, **SMALL)
    x = images()
    check_output_contract(encoder, x, {
        "keypoints": ((2, 5, 2), "float32"), "scores": ((2, 5), "float32"), "descriptors": ((2, 5, 8), "float32"),
        "valid": ((2, 5), "bool"), "peaks": ((2, 5, 2), "int32"), "heatmap": ((2, 8, 16), "float32"),
        "scoremap": ((2, 8, 16), "float32"), "features": ((2, 8, 16, 8), "float32")})
    check_eager_matches_tf_function(encoder, x)
    symbolic = KeypointEncoder(num_keypoints=5, kernel_size=5, **SMALL)(keras.Input((8, 16, 3)))
    assert symbolic["keypoints"].shape == (None, 5, 2) and symbolic["peaks"].dtype == "int32"
    assert symbolic["features"].shape == (None, 8, 16, 8) and symbolic["valid"].dtype == "bool"


def test_encoder_matches_references_on_its_own_maps():
    encoder = KeypointEncoder(num_keypoints=6, kernel_size=5, temperature=0.3, **SMALL)
    out = {key: value.numpy() for key, value in encoder(images()).items()}
    scoremap = out["scoremap"]
    np.testing.assert_allclose(scoremap, 1 / (1 + np.exp(-out["heatmap"].astype(np.float64))), atol=1e-6)
    # the heatmap is standardised per image (GroupNorm(1), γ = 1 and β = 0 at initialisation)
    np.testing.assert_allclose(out["heatmap"].mean((1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(out["heatmap"].std((1, 2)), 1, atol=1e-3)
    peaks, valid = brute_force_peaks(scoremap, 5, 6)
    np.testing.assert_array_equal(out["peaks"], peaks)
    np.testing.assert_array_equal(out["valid"], valid)
    np.testing.assert_allclose(out["keypoints"], eq5(scoremap, peaks, 5, 0.3), atol=1e-4)
    np.testing.assert_allclose(out["scores"], bilinear(scoremap[..., None], out["keypoints"])[..., 0], atol=1e-5)
    np.testing.assert_allclose(out["descriptors"], unit(bilinear(out["features"], out["keypoints"])), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["descriptors"], axis=-1), 1.0, atol=1e-6)


def test_truncate_option_reads_the_truncated_pixel():
    x = images(seed=1)
    seed_encoder = KeypointEncoder(num_keypoints=4, kernel_size=5, **SMALL)
    original = KeypointEncoder(num_keypoints=4, kernel_size=5, descriptor_sampling="truncate", **SMALL)
    seed_out = seed_encoder(x)
    original(x)
    original.set_weights(seed_encoder.get_weights())
    out = {key: value.numpy() for key, value in original(x).items()}
    np.testing.assert_array_equal(out["keypoints"], seed_out["keypoints"].numpy())  # only the descriptors differ
    rows, cols = out["keypoints"][..., 0].astype(int), out["keypoints"][..., 1].astype(int)
    expected = unit(np.stack([out["features"][b, rows[b], cols[b]] for b in range(2)]).astype(np.float64))
    np.testing.assert_allclose(out["descriptors"], expected, atol=1e-6)
    assert not np.allclose(out["descriptors"], seed_out["descriptors"].numpy(), atol=1e-4)


def test_fewer_maxima_than_keypoints_are_flagged_and_deterministic():
    # A 15×15 window covers all of an 8×8 image: one local maximum per image (ties have probability ~0).
    encoder = KeypointEncoder(num_keypoints=3, kernel_size=15, **SMALL)
    x = images(2, 8, 8, seed=2)
    out = {key: value.numpy() for key, value in encoder(x).items()}
    np.testing.assert_array_equal(out["valid"], [[True, False, False]] * 2)
    peaks, _ = brute_force_peaks(out["scoremap"], 15, 3)
    np.testing.assert_array_equal(out["peaks"], peaks)  # the image's maximum, then its two next-best pixels
    np.testing.assert_array_equal(encoder(x)["peaks"].numpy(), out["peaks"])


def test_gradients_reach_the_heatmap_and_the_features():
    x = images(seed=3)
    kernel_size, radius = 5, 2
    for sampling in ("bilinear", "truncate"):
        encoder = KeypointEncoder(num_keypoints=4, kernel_size=kernel_size, descriptor_sampling=sampling, **SMALL)
        weights = tf.constant(np.random.default_rng(4).normal(size=(2, 4, 8)), tf.float32)
        with tf.GradientTape(persistent=True) as tape:
            out = encoder(x)
            keypoint_loss = tf.reduce_sum(out["keypoints"] * weights[..., :2])
            descriptor_loss = tf.reduce_sum(out["descriptors"] * weights)
            total_loss = keypoint_loss + descriptor_loss
        peaks = out["peaks"].numpy()
        # keypoints <- heatmap through the soft-argmax: non-zero in every window, zero outside the windows
        grad_heatmap = tape.gradient(keypoint_loss, out["heatmap"]).numpy()
        in_windows = np.zeros(grad_heatmap.shape, bool)
        for b, k in np.ndindex(2, 4):
            r, c = peaks[b, k]
            window = (slice(max(0, r - radius), r + radius + 1), slice(max(0, c - radius), c + radius + 1))
            in_windows[b][window] = True
            assert np.any(grad_heatmap[b][window] != 0), (sampling, b, k)
        assert np.all(grad_heatmap[~in_windows] == 0)
        # descriptors <- features at the sampled pixels
        grad_features = np.abs(tape.gradient(descriptor_loss, out["features"]).numpy()).sum(-1)  # [B, H, W]
        keypoints = out["keypoints"].numpy()
        for b, k in np.ndindex(2, 4):
            row, col = keypoints[b, k]
            assert grad_features[b, int(row), int(col)] > 0, (sampling, b, k)
            if sampling == "bilinear":
                assert grad_features[b, min(int(row) + 1, 7), min(int(col) + 1, 15)] > 0
        # descriptors <- heatmap through the keypoints only with bilinear sampling
        grad = tape.gradient(descriptor_loss, out["heatmap"])
        if sampling == "bilinear":
            assert np.any(grad.numpy() != 0)
        else:
            assert grad is None or np.all(grad.numpy() == 0)
        # every trainable weight receives a gradient from the descriptors and keypoints
        gradients = tape.gradient(total_loss, encoder.trainable_weights)
        missing = [w.path for w, g in zip(encoder.trainable_weights, gradients) if g is None]
        assert not missing, missing


def test_encoder_under_mixed_precision():
    encoder = KeypointEncoder(num_keypoints=3, kernel_size=5, dtype="mixed_bfloat16", **SMALL)
    out = encoder(images(1, 8, 16))
    assert encoder.unet.compute_dtype == "bfloat16" and encoder.unet.trainable_weights[0].dtype == "float32"
    for key in ("keypoints", "scores", "descriptors", "heatmap", "scoremap", "features"):
        assert out[key].dtype == tf.float32, key
        assert np.all(np.isfinite(out[key].numpy())), key
    np.testing.assert_allclose(np.linalg.norm(out["descriptors"].numpy(), axis=-1), 1.0, atol=1e-5)


def test_encoder_errors():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        KeypointEncoder(kernel_size=12)
    with pytest.raises(ValueError, match="temperature must be a positive python float"):
        KeypointEncoder(temperature=0.0)
    with pytest.raises(ValueError, match="descriptor_sampling must be one of"):
        KeypointEncoder(descriptor_sampling="nearest")
    with pytest.raises(ValueError, match="border must be one of"):
        KeypointEncoder(border="reflect")
    with pytest.raises(ValueError, match="num_keypoints must be a python int >= 1"):
        KeypointEncoder(num_keypoints=0)
    with pytest.raises(ValueError, match="at least num_keypoints = 65 pixels"):
        KeypointEncoder(num_keypoints=65, kernel_size=3, **SMALL)(images(1, 8, 8))
    with pytest.raises(ValueError, match="must be a multiple of 8"):
        KeypointEncoder(num_keypoints=2, kernel_size=3, **SMALL)(images(1, 12, 16))


def test_encoder_config_round_trip():
    kwargs = dict(num_keypoints=3, kernel_size=7, temperature=0.5, feature_channels=8, base_width=4, groups=4,
                  descriptor_sampling="truncate", border="zeros", align_corners=True, heatmap_affine=False,
                  initialization="pytorch", name="tusk_encoder")
    clone = check_config_round_trip(KeypointEncoder, kwargs, images(2, 8, 16))
    assert isinstance(clone.unet, UNet) and not clone.heatmap_norm.trainable_weights  # no affine parameters
    assert clone.unet.initialization == "pytorch" and type(clone.head_conv_2) is TorchInitConv2D
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(clone))
    assert type(restored) is KeypointEncoder and restored.get_config() == clone.get_config()
