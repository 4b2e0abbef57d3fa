"""render_sprites' dense path (method="dense": every object at every pixel, the bilinear reads as two matrix
products per object) against the ragged pair path it must equal (values and gradients, float64, every box kind
of test_render_sprites: inside, partly and wholly outside, sub-pixel, larger than the image, inverted, padding),
against the numpy transcription of Algorithm 1, under XLA, and inside SPAIR's training loss and gradients."""
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.rendering.test_render_sprites import ARG_NAMES, CASES, random_inputs, reference_render
from tfobj.rendering import render_sprites
from tfobj.rendering.render_sprites import _window_covers_image


def _value_and_grads(inputs, **kwargs):
    inputs = [tf.constant(a) for a in inputs]
    weights = tf.constant(np.random.default_rng(5).random(inputs[0].shape), inputs[0].dtype)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = render_sprites(*inputs, **kwargs)
        loss = tf.reduce_sum(weights * tf.square(out - 0.5))
    return [out.numpy()] + [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, inputs)]


def _assert_close(got, expected, rel):
    """Each of (output, 6 gradients) equal up to `rel` times its largest entry (sums in another order)."""
    for name, a, b in zip(["output"] + ARG_NAMES, got, expected):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=0, atol=rel * max(1.0, np.abs(b).max(initial=0.0)), err_msg=name)


@pytest.mark.parametrize("importance", ["seed", "original"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_dense_matches_pairs_float64(case, importance):
    """float64: the two paths differ only in summation order, ~1e-15 relative; 1e-10 leaves room for sums of
    up to a few thousand terms and still catches any difference in the convention (a misplaced texel, a
    pixel more or less in CONTAINS, a tap not zero-padded all move values by >= 1e-3)."""
    inputs = random_inputs(*CASES[case], dtype=np.float64)
    _assert_close(_value_and_grads(inputs, importance=importance, method="dense"),
                  _value_and_grads(inputs, importance=importance, method="pairs"), rel=1e-10)


@pytest.mark.parametrize("importance", ["seed", "original"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_dense_matches_numpy_reference_float32(case, importance):
    inputs = random_inputs(*CASES[case])
    got = render_sprites(*inputs, importance=importance, method="dense")
    assert got.dtype == tf.float32 and got.shape == inputs[0].shape
    np.testing.assert_allclose(got.numpy(), reference_render(*inputs, importance=importance), rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_dense_matches_pairs_on_random_boxes_float32(seed):
    """Many random boxes of every kind on a larger canvas, float32: same values; gradients to float32
    round-off relative to their largest entry."""
    inputs = random_inputs(10 + seed, 2, 30, 26, 3, 20, 6, 5)
    for importance in ("seed", "original"):
        _assert_close(_value_and_grads(inputs, importance=importance, method="dense"),
                      _value_and_grads(inputs, importance=importance, method="pairs"), rel=1e-4)


def test_dense_extreme_and_non_finite_boxes_render_nothing_with_finite_gradients():
    """Boxes the dense path evaluates at every pixel although they contain none (or a few): NaN/inf,
    inverted, a 1e-30-pixel box, a box 1e6 image heights away: finite output and gradients, the pair path's
    values, zero gradient for the boxes that contain no pixel."""
    background = np.full((1, 8, 8, 1), 0.25, np.float32)
    sprite = np.ones((1, 6, 2, 2, 1), np.float32)
    boxes = np.array([[[np.nan, 0, 1, 1], [0.25, 0.25, 0.5, np.inf], [0.5, 0.5, 0.25, 0.75],
                       [0.3, 0.3, 0.3 + 1e-31, 0.4], [-1e6, 0.1, -1e6 + 0.5, 0.6], [0.5, 0.5, 0.75, 0.75]]], np.float32)
    inputs = [background, sprite, sprite, boxes, np.ones((1, 6), np.float32), np.zeros((1, 6), np.float32)]
    dense, pairs = _value_and_grads(inputs, method="dense"), _value_and_grads(inputs, method="pairs")
    for name, value in zip(["output"] + ARG_NAMES, dense):
        assert np.all(np.isfinite(value)), name
    expected = background.copy()
    expected[0, 4:6, 4:6] = 1.0  # only the last box
    np.testing.assert_array_equal(dense[0], expected)
    assert np.all(dense[4][0, :5] == 0)
    _assert_close(dense, pairs, rel=1e-6)


def test_auto_uses_dense_where_the_window_covers_the_image():
    """method="auto": dense when max_box_size's window (min(floor(bound (1 + 1/h)) + 2, H)) covers the image
    (bit-identical to method="dense"), the ragged pairs otherwise and without a bound (bit-identical to "pairs")."""
    inputs = random_inputs(*CASES["rgb_batch3_nonsquare"])  # 20 x 28 image, 5 x 7 sprites
    run = lambda **kw: render_sprites(*inputs, **kw).numpy()  # noqa: E731
    np.testing.assert_array_equal(run(max_box_size=(30.0, 30.0), method="auto"), run(method="dense"))
    np.testing.assert_array_equal(run(max_box_size=(10.0, 30.0), method="auto"),
                                  run(method="pairs"))  # 10·6/5 + 2 = 14 < 20 rows
    np.testing.assert_array_equal(run(method="auto"), run(method="pairs"))
    np.testing.assert_array_equal(run(max_box_size=(30.0, 30.0)), run(method="dense"))  # the default: auto
    assert not np.array_equal(run(method="dense"), run(method="pairs"))  # the two really differ in round-off
    assert _window_covers_image(tf.zeros([1, 48, 48, 3]), tf.zeros([1, 16, 14, 14, 3]), (48.0, 48.0))  # SPAIR 48 px
    assert not _window_covers_image(tf.zeros([1, 96, 96, 3]), tf.zeros([1, 64, 14, 14, 3]), (48.0, 48.0))
    specs = [tf.TensorSpec([None] * rank, tf.float32) for rank in (4, 5, 5, 3, 2, 2)]
    unknown = tf.function(lambda *a: render_sprites(*a, max_box_size=(30.0, 30.0), method="auto"),
                          input_signature=specs)
    np.testing.assert_array_equal(unknown(*inputs).numpy(), run(method="pairs"))  # unknown H, W: pairs


def test_dense_tf_function_with_unknown_shapes_and_empty_batch():
    specs = [tf.TensorSpec([None] * rank, tf.float32) for rank in (4, 5, 5, 3, 2, 2)]
    fn = tf.function(functools.partial(render_sprites, method="dense"), input_signature=specs)
    for case in ["rgb_batch3_nonsquare", "gray_single", "no_objects"]:
        inputs = random_inputs(*CASES[case])
        np.testing.assert_allclose(fn(*inputs).numpy(), render_sprites(*inputs).numpy(), atol=1e-6)
    assert fn(*random_inputs(0, 0, 6, 5, 3, 4, 3, 3)).shape == (0, 6, 5, 3)


@pytest.mark.parametrize("importance", ["seed", pytest.param("original", marks=pytest.mark.slow)])
def test_dense_under_jit_compile_matches_pairs(importance):
    """Under XLA, "auto" with a bound whose window covers the image (and "dense") compile the dense path:
    the ragged path's values and gradients."""
    inputs = random_inputs(*CASES["rgb_many_overlaps"])  # 12 x 12 image
    eager = _value_and_grads(inputs, importance=importance, method="pairs")
    for kwargs in (dict(max_box_size=(12.0, 12.0), method="auto"), dict(method="dense")):
        xla = tf.function(lambda *a, kw=kwargs: _graph_value_and_grads(a, importance=importance, **kw),
                          jit_compile=True)
        _assert_close([t.numpy() for t in xla(*[tf.constant(a) for a in inputs])], eager, rel=1e-4)


def _graph_value_and_grads(inputs, **kwargs):
    weights = tf.constant(np.random.default_rng(5).random(inputs[0].shape), inputs[0].dtype)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = render_sprites(*inputs, **kwargs)
        loss = tf.reduce_sum(weights * tf.square(out - 0.5))
    return [out] + [tf.convert_to_tensor(g) for g in tape.gradient(loss, inputs)]


def test_method_error():
    with pytest.raises(ValueError, match="method must be one of"):
        render_sprites(*random_inputs(*CASES["gray_single"]), method="matmul")


@pytest.mark.parametrize("importance", ["seed", pytest.param("original", marks=pytest.mark.slow)])
def test_spair_losses_and_gradients_same_with_either_path(monkeypatch, importance):
    """SPAIR's training pass (sampled latents, the same noise) with the renderer forced to each path: the
    loss terms agree to float32 round-off and every variable's gradient to 1e-4 of its norm."""
    from tfobj.models.spair import spair as spair_module

    images = tf.constant((np.random.default_rng(0).random((2, 48, 48, 3)) > 0.8).astype(np.float32))
    model = spair_module.SPAIR(config={"importance": importance}, seed=3)
    model(images)
    model.count_prior_s.assign(0.5)
    model.wheels.assign(0.0)  # gradients reach the boxes, depth and presence
    state = tf.identity(model.seed_generator.state)

    def terms_and_grads(method):
        monkeypatch.setattr(spair_module, "render_sprites", functools.partial(render_sprites, method=method))
        model.seed_generator.state.assign(state)  # the same noise
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            terms = model.loss_terms(images, outputs)
            loss = tf.reduce_mean(tf.add_n(list(terms.values())))
        grads = tape.gradient(loss, model.trainable_variables)
        return {k: v.numpy() for k, v in terms.items()}, [keras.ops.convert_to_numpy(g) for g in grads]

    dense_terms, dense_grads = terms_and_grads("dense")
    pair_terms, pair_grads = terms_and_grads("pairs")
    for key in pair_terms:
        np.testing.assert_allclose(dense_terms[key], pair_terms[key], rtol=1e-5, atol=1e-4, err_msg=key)
    assert pair_terms["nll"].min() > 0
    for variable, g_dense, g_pairs in zip(model.trainable_variables, dense_grads, pair_grads):
        norm = np.linalg.norm(g_pairs)
        assert np.linalg.norm(g_dense - g_pairs) <= 1e-4 * max(norm, 1e-6), variable.path


def test_single_object_gradient_in_a_graph():
    """B·K = 1 inside a tf.function (a learn_solid SPAIR test's shapes): the dense path tiles its interpolation
    matrices because a broadcasting batch matmul's gradient corrupted the heap there (TF 2.21 CPU, float32).
    float32 runs the kernels that crashed (values compared; its gradients at pixels of tiny normaliser carry
    float32 cancellation in both paths alike), float64 compares the gradients (to 1e-6 of the largest: one texel
    here is read only at pixels where the normaliser is ~1e-4, whose gradient terms of ~1/normaliser cancel)."""
    inputs = random_inputs(7, 1, 12, 12, 3, 1, 14, 14)
    inputs[3] = np.array([[[0.1, 0.1, 0.7, 0.8]]], np.float32)
    graph = tf.function(lambda *a: _graph_value_and_grads(a, method="dense"))
    for _ in range(5):
        got = [t.numpy() for t in graph(*[tf.constant(a) for a in inputs])]
    assert all(np.all(np.isfinite(g)) for g in got)
    np.testing.assert_allclose(got[0], _value_and_grads(inputs, method="pairs")[0], atol=1e-6)
    inputs64 = [a.astype(np.float64) for a in inputs]
    got64 = [t.numpy() for t in graph(*[tf.constant(a) for a in inputs64])]
    _assert_close(got64, _value_and_grads(inputs64, method="pairs"), rel=1e-6)
