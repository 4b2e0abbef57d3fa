"""Glimpse extraction against a numpy bilinear reference and the renderer's inverse."""
import numpy as np
import tensorflow as tf

from tfobj.layers.glimpse import Glimpse, extract_glimpses
from tfobj.layers.mlp import MLP


def numpy_glimpse(image, box, size):
    """Reference: texel centres on the half-pixel grid, bilinear with zeros outside."""
    height, width, channels = image.shape
    out = np.zeros(size + (channels,))
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    for i in range(size[0]):
        for j in range(size[1]):
            y = box[0] * height + (i + 0.5) * (box[2] - box[0]) * height / size[0] - 0.5
            x = box[1] * width + (j + 0.5) * (box[3] - box[1]) * width / size[1] - 0.5
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            fy, fx = y - y0, x - x0
            value = 0.0
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    yy, xx = y0 + dy + 1, x0 + dx + 1
                    if 0 <= yy < height + 2 and 0 <= xx < width + 2:
                        value = value + wy * wx * padded[yy, xx]
            out[i, j] = value
    return out


def test_matches_numpy_reference_including_outside_boxes():
    rng = np.random.default_rng(0)
    images = rng.random((2, 20, 28, 3)).astype(np.float32)
    boxes = np.array([[[0.1, 0.2, 0.6, 0.5], [-0.2, 0.7, 0.3, 1.3]],
                      [[0.0, 0.0, 1.0, 1.0], [0.45, 0.45, 0.5, 0.52]]], np.float32)
    got = extract_glimpses(images, boxes, (5, 7)).numpy()
    for b in range(2):
        for k in range(2):
            np.testing.assert_allclose(got[b, k], numpy_glimpse(images[b], boxes[b, k], (5, 7)), atol=1e-5)


def test_whole_image_box_at_native_size_is_identity():
    images = np.random.default_rng(1).random((1, 14, 14, 1)).astype(np.float32)
    got = extract_glimpses(images, np.array([[[0, 0, 1, 1]]], np.float32), (14, 14)).numpy()
    np.testing.assert_allclose(got[0, 0], images[0], atol=1e-5)


def test_gradients_reach_boxes_and_layer_config():
    images = tf.constant(np.random.default_rng(2).random((1, 12, 12, 3)), tf.float32)
    boxes = tf.Variable([[[0.2, 0.2, 0.7, 0.8]]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(Glimpse((4, 4))(images, boxes) ** 2)
    grad = tape.gradient(loss, boxes)
    assert np.all(np.isfinite(grad.numpy())) and np.abs(grad.numpy()).sum() > 0
    assert Glimpse.from_config(Glimpse((3, 5)).get_config()).size == (3, 5)


def test_mlp_shapes_relu_hidden_linear_output_and_config():
    mlp = MLP((8, 6), 3)
    out = mlp(np.ones((2, 5, 4), np.float32))
    assert out.shape == (2, 5, 3)
    assert [layer.activation.__name__ for layer in mlp.dense_layers] == ["relu", "relu", "linear"]
    assert MLP.from_config(mlp.get_config()).get_config() == mlp.get_config()


def test_crop_and_resize_path_equals_gather_path_values_and_gradients():
    """The default path (crop_and_resize on the padded image) and the XLA path (gathers) sample the same
    points: values and the gradients into images and boxes agree, for boxes inside, across and outside the
    image, inverted ones, and the single-texel sizes crop_and_resize treats apart."""
    from tfobj.layers.glimpse import _crop_and_resize_glimpses, _gather_glimpses

    rng = np.random.default_rng(3)
    for size in [(14, 14), (5, 7), (1, 3), (2, 1)]:
        images = tf.Variable(rng.random((2, 12, 16, 3)), dtype=tf.float32)
        boxes = tf.Variable(rng.uniform(-0.4, 1.4, (2, 5, 4)), dtype=tf.float32)
        weights = tf.constant(rng.standard_normal((2, 5) + size + (3,)), tf.float32)
        results = []
        for path in (_gather_glimpses, _crop_and_resize_glimpses):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(path(images, boxes, size) * weights)
            results.append([loss.numpy()] + [g.numpy() for g in tape.gradient(loss, [images, boxes])])
        for got, want in zip(results[1], results[0]):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_xla_uses_the_gather_path_and_matches():
    images = tf.constant(np.random.default_rng(4).random((2, 10, 10, 1)), tf.float32)
    boxes = tf.constant([[[0.1, 0.2, 0.6, 0.9]], [[-0.3, 0.5, 0.4, 1.2]]], tf.float32)
    compiled = tf.function(lambda i, b: extract_glimpses(i, b, (4, 6)), jit_compile=True)
    np.testing.assert_allclose(compiled(images, boxes).numpy(), extract_glimpses(images, boxes, (4, 6)).numpy(),
                               atol=1e-5)


def test_non_finite_boxes_give_nan_glimpses_not_an_error():
    """crop_and_resize refuses non-finite boxes; the glimpse of such a box is NaN (as on the gather path), the
    others unaffected, so a diverging run reaches fit's NaN check instead of an op error."""
    images = tf.constant(np.random.default_rng(5).random((1, 8, 8, 1)), tf.float32)
    boxes = tf.constant([[[0.1, 0.1, 0.6, 0.6], [np.nan, 0.0, 1.0, 1.0], [0.0, -np.inf, 1.0, 1.0]]], tf.float32)
    got = extract_glimpses(images, boxes, (3, 3)).numpy()
    assert np.isnan(got[0, 1]).all() and np.isnan(got[0, 2]).all()
    np.testing.assert_allclose(got[0, 0], extract_glimpses(images, boxes[:, :1], (3, 3)).numpy()[0, 0])
