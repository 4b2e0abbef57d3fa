"""TUSK's thin-plate-spline warps and equivariance loss (`tfobj/models/tusk/tps.py`).

References: a numpy TPS solved with the textbook kernel r² log r and block order; the interpolation property at
control points on pixel centres; exact affine maps and the centroid of a warped blob (change of variables);
a numpy loop of `grid_sample`'s bilinear formula on an `np.pad`-ed image (zeros and reflection); a numpy
transcription of the original's draws (`utils/tps.py`, `get_tps_para`) from the returned uniforms; and of
`train.py`'s pad-warp-crop-MSE recipe; finite differences for the loss's gradients.
"""
import numpy as np
import pytest
import tensorflow as tf

from tfobj.models.tusk.tps import (CONTROL_POINTS, FRAME_POINTS, TPS_PRESETS, canvas_margin, equivariance_loss,
                                   pad_images, random_tps_params, tps_grid, warp)

IDENTITY = dict(scale=1.0, scale_var=0.0, tps_var=0.0, offset_var=0.0, rotation_var=0.0)


def centres(size, align_corners):
    """Normalised pixel centres along one axis, written out independently of tps.py."""
    if align_corners:
        return np.array([-1.0 + 2.0 * j / (size - 1) for j in range(size)])
    return np.array([(j + 0.5) / size * 2.0 - 1.0 for j in range(size)])


def identity_grid(height, width, align_corners=False):
    xs, ys = centres(width, align_corners), centres(height, align_corners)
    return np.stack(np.meshgrid(xs, ys), axis=-1)  # [H, W, 2] (x, y)


def bilinear_reference(image, grid, padding, align_corners):
    """grid_sample(mode="bilinear") for one image [H, W, C] and grid [Ho, Wo, 2], by loops, on an np.pad-ed copy."""
    height, width, _ = image.shape
    pad = 64
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect" if padding == "reflect" else "constant")
    out = np.zeros(grid.shape[:2] + image.shape[2:])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            x, y = grid[i, j]
            if align_corners:
                u, v = (x + 1) / 2 * (width - 1), (y + 1) / 2 * (height - 1)
            else:
                u, v = ((x + 1) * width - 1) / 2, ((y + 1) * height - 1) / 2
            u0, v0 = int(np.floor(u)), int(np.floor(v))
            for dv in (0, 1):
                for du in (0, 1):
                    weight = (1 - abs(v - v0 - dv)) * (1 - abs(u - u0 - du))
                    out[i, j] += weight * padded[v0 + dv + pad, u0 + du + pad]
    return out


def numpy_tps_grid(points, displacements, height, width, align_corners=False):
    """Textbook TPS (Bookstein): U(r) = r² log r, [[K, P], [Pᵀ, 0]] [w; a] = [targets; 0]."""
    n = len(points)
    r = np.linalg.norm(points[:, None] - points[None], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = np.where(r > 0, r**2 * np.log(r), 0.0)
    basis = np.concatenate([np.ones((n, 1)), points], axis=1)
    system = np.block([[kernel, basis], [basis.T, np.zeros((3, 3))]])
    solution = np.linalg.solve(system, np.concatenate([points + displacements, np.zeros((3, 2))]))
    positions = identity_grid(height, width, align_corners).reshape(-1, 2)
    r = np.linalg.norm(positions[:, None] - points[None], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        radial = np.where(r > 0, r**2 * np.log(r), 0.0)
    mapped = radial @ solution[:n] + np.concatenate([np.ones((len(positions), 1)), positions], 1) @ solution[n:]
    return mapped.reshape(height, width, 2)


def affine_params(matrix, translation, batch=1, dtype=np.float32):
    """Control points spread over the canvas, each displaced by the affine map p -> matrix·p + translation."""
    points = np.array(CONTROL_POINTS + FRAME_POINTS + ((0.1, 0.2), (-0.3, 0.05)))
    targets = points @ np.asarray(matrix).T + np.asarray(translation)
    return {"control_points": np.repeat(points[None], batch, 0).astype(dtype),
            "displacements": np.repeat((targets - points)[None], batch, 0).astype(dtype)}


# --- parameters -----------------------------------------------------------------------------------------------


def test_random_parameters_are_the_original_s_recipe():
    """Displacements recomputed in numpy from the returned draws (get_tps_para's formula); draws in range."""
    preset = TPS_PRESETS["mnist"]
    params = {key: value.numpy().astype(np.float64) for key, value in random_tps_params(64, 7, **preset).items()}
    assert params["control_points"].shape == params["displacements"].shape == (64, 16, 2)
    jitter = params["control_points"][:, :8] - np.array(CONTROL_POINTS)
    assert np.all(np.abs(jitter) <= 0.1) and jitter.std() > 0.04  # U(−0.1, 0.1): std 0.058
    np.testing.assert_allclose(params["control_points"][:, 8:], np.broadcast_to(FRAME_POINTS, (64, 8, 2)), atol=1e-7)
    assert np.all(params["displacements"][:, 8:] == 0)  # the frame is pinned
    for key, low, high in (("perturbations", -0.1, 0.1), ("scales", 0.9, 1.0), ("scale_centres", -0.01, 0.01),
                           ("rotation_centres", -0.01, 0.01), ("rotations", -0.25, 0.25)):
        assert np.all((params[key] >= low - 1e-7) & (params[key] <= high + 1e-7)), key
        assert params[key].max() - params[key].min() > 0.8 * (high - low), key  # spread over the range
    c, v, s = params["control_points"][:, :8], params["perturbations"], params["scales"][:, None]
    o1, o2, theta = params["scale_centres"][:, None], params["rotation_centres"][:, None], params["rotations"]
    scaled = s * (c + v - o1) + o1
    rotation = np.stack([np.stack([np.cos(theta), -np.sin(theta)], -1), np.stack([np.sin(theta), np.cos(theta)], -1)],
                        -2)  # [B, 2, 2]
    targets = np.einsum("bij,bnj->bni", rotation, scaled - o2) + o2
    np.testing.assert_allclose(params["displacements"][:, :8], targets - c, atol=1e-6)


def test_random_parameters_are_reproducible_from_the_seed():
    a = random_tps_params(3, 11, **TPS_PRESETS["multi_object"])
    b = tf.function(lambda seed: random_tps_params(3, seed, **TPS_PRESETS["multi_object"]))(tf.constant([11, 0]))
    c = random_tps_params(3, 12, **TPS_PRESETS["multi_object"])
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
    assert not np.allclose(a["displacements"].numpy(), c["displacements"].numpy())


def test_random_parameters_reject_bad_arguments():
    for kwargs, message in ((dict(batch=0), "batch"), (dict(batch=2, scale=0.0), "scale"),
                            (dict(batch=2, tps_var=-0.1), "tps_var"), (dict(batch=2, seed=1.5), "seed")):
        kwargs.setdefault("seed", 0)
        with pytest.raises(ValueError, match=message):
            random_tps_params(**kwargs)


# --- grid -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("align_corners", [False, True])
def test_identity_parameters_give_the_identity_grid_and_an_unchanged_image(align_corners):
    params = random_tps_params(2, 3, **IDENTITY)
    assert np.all(params["displacements"].numpy() == 0)
    grid = tps_grid(params, 7, 5, align_corners=align_corners).numpy()
    np.testing.assert_allclose(grid, np.broadcast_to(identity_grid(7, 5, align_corners), (2, 7, 5, 2)), atol=1e-6)
    image = np.random.default_rng(0).random((2, 7, 5, 3)).astype(np.float32)
    for padding in ("zeros", "reflect"):
        np.testing.assert_allclose(warp(image, grid, padding, align_corners).numpy(), image, atol=1e-5)


def test_the_original_s_mixed_conventions_shrink_the_content():
    """linspace grid (align_corners=True) sampled with align_corners=False: pixel j reads j·n/(n−1) − 1/2."""
    n = 9
    grid = tps_grid(random_tps_params(1, 0, **IDENTITY), n, n, align_corners=True)
    image = np.random.default_rng(1).random((1, n, n, 1)).astype(np.float32)
    out = warp(image, grid, "zeros", align_corners=False).numpy()[0]
    positions = np.arange(n) * n / (n - 1) - 0.5  # pixel-index units
    normalised = (2 * positions + 1) / n - 1
    expected = bilinear_reference(image[0].astype(np.float64), np.stack(np.meshgrid(normalised, normalised), -1),
                                  "zeros", align_corners=False)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert not np.allclose(out, image[0], atol=1e-2)


def test_grid_matches_a_textbook_tps():
    params = random_tps_params(3, 5, **TPS_PRESETS["mnist"])
    grid = tps_grid(params, 12, 10).numpy()
    for b in range(3):
        expected = numpy_tps_grid(params["control_points"].numpy()[b].astype(np.float64),
                                  params["displacements"].numpy()[b].astype(np.float64), 12, 10)
        np.testing.assert_allclose(grid[b], expected, atol=1e-4)
    assert np.abs(grid - identity_grid(12, 10)).max() > 0.02  # the warp does move things


def test_grid_interpolates_the_control_points():
    """Control points on pixel centres: the grid there is c + d."""
    size = 9
    xs = centres(size, False)
    cells = [(1, 1), (7, 2), (4, 4), (2, 6), (6, 7), (0, 8), (8, 0), (5, 3)]  # (row, col)
    points = np.array([[xs[col], xs[row]] for row, col in cells])
    displacements = np.random.default_rng(2).uniform(-0.1, 0.1, points.shape)
    grid = tps_grid({"control_points": points[None], "displacements": displacements[None]}, size, size).numpy()[0]
    assert grid.dtype == np.float64  # float64 parameters stay float64
    for (row, col), point, displacement in zip(cells, points, displacements):
        np.testing.assert_allclose(grid[row, col], point + displacement, atol=1e-9)


@pytest.mark.parametrize("kind", ["translation", "rotation", "scale"])
def test_affine_tps_moves_a_blob_s_centroid_as_the_affine_map_predicts(kind):
    """Output pixel p reads the input at f(p) = A p + t, so content at q moves to A⁻¹(q − t)."""
    matrix, translation = {
        "translation": (np.eye(2), (0.15, -0.1)),
        "rotation": ([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]], (0.0, 0.0)),
        "scale": (np.diag([0.8, 1.2]), (0.1, 0.0)),
    }[kind]
    size = 48
    params = affine_params(matrix, translation)
    grid = tps_grid(params, size, size).numpy()
    np.testing.assert_allclose(grid[0], identity_grid(size, size) @ np.asarray(matrix).T + translation, atol=1e-5)
    rows, cols = np.mgrid[0:size, 0:size]
    blob_centre = np.array([20.0, 27.0])  # (row, col)
    blob = np.exp(-((rows - blob_centre[0]) ** 2 + (cols - blob_centre[1]) ** 2) / (2 * 2.0**2))
    out = warp(blob[None, :, :, None].astype(np.float32), grid).numpy()[0, :, :, 0]
    centroid = np.array([np.sum(rows * out), np.sum(cols * out)]) / np.sum(out)  # (row, col), pixel indices
    q = (2 * blob_centre[::-1] + 1) / size - 1  # normalised (x, y)
    predicted = np.linalg.solve(np.asarray(matrix), q - np.asarray(translation))
    predicted = ((predicted + 1) * size - 1) / 2  # pixel-index (x, y)
    np.testing.assert_allclose(centroid, predicted[::-1], atol=0.02)
    assert np.linalg.norm(centroid - blob_centre) > 1.0  # it moved


def test_grid_rejects_bad_arguments():
    params = random_tps_params(1, 0)
    with pytest.raises(ValueError, match="control_points"):
        tps_grid({"displacements": params["displacements"]}, 4, 4)
    with pytest.raises(ValueError, match="same|shape"):
        tps_grid({"control_points": params["control_points"], "displacements": params["displacements"][:, :3]}, 4, 4)
    with pytest.raises(ValueError, match="height"):
        tps_grid(params, 0, 4)


# --- warp -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_warp_matches_a_bilinear_reference(padding, align_corners):
    rng = np.random.default_rng(3)
    image = rng.random((2, 5, 4, 3))
    grid = rng.uniform(-3.0, 3.0, (2, 6, 7, 2))  # far outside: several reflections
    grid[:, 0, 0] = [-1.0, 1.0]  # corners and an exact pixel centre
    grid[:, 0, 1] = [1.0, -1.0]
    out = warp(image.astype(np.float32), grid.astype(np.float32), padding, align_corners).numpy()
    for b in range(2):
        expected = bilinear_reference(image[b], grid[b].astype(np.float32).astype(np.float64), padding, align_corners)
        np.testing.assert_allclose(out[b], expected, atol=1e-5)


def test_warp_of_a_single_row_image_reflects_onto_it():
    image = np.arange(4, dtype=np.float64).reshape(1, 1, 4, 1)
    grid = np.array([[[[-0.6, 2.7], [0.1, -5.0]]]])
    for padding in ("zeros", "reflect"):
        np.testing.assert_allclose(warp(image, grid, padding).numpy()[0],
                                   bilinear_reference(image[0], grid[0], padding, False), atol=1e-12)


def test_warp_gradients_reach_image_and_grid():
    image = tf.constant(np.random.default_rng(4).random((1, 6, 6, 2)), tf.float32)
    grid = tf.constant(np.random.default_rng(5).uniform(-0.9, 0.9, (1, 4, 4, 2)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([image, grid])
        out = tf.reduce_sum(warp(image, grid, "reflect") ** 2)
    for gradient in tape.gradient(out, [image, grid]):
        assert gradient is not None and np.all(np.isfinite(gradient.numpy())) and np.any(gradient.numpy() != 0)


def test_warp_rejects_bad_arguments():
    image, grid = np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="padding"):
        warp(image, grid, "border")
    with pytest.raises(ValueError, match="grid"):
        warp(image, np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="batch"):
        warp(image, np.zeros((2, 4, 4, 2), np.float32))


def test_pad_images_is_reflection_padding():
    image = np.random.default_rng(6).random((2, 6, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(pad_images(image, 2).numpy(),
                                  np.pad(image, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect"))
    np.testing.assert_array_equal(pad_images(image[..., 0], 1, "constant", 1.0).numpy(),
                                  np.pad(image[..., 0], ((0, 0), (1, 1), (1, 1)), constant_values=1.0))
    assert canvas_margin(80) == 16 and canvas_margin(64) == 12  # int(H/5)
    with pytest.raises(ValueError, match="smaller than W"):
        pad_images(image, 5)


# --- equivariance loss ------------------------------------------------------------------------------------------


def original_recipe(first, second, grid, margin, padding="reflect"):
    """train.py: grid_sample(pad(first, m), grid)[m:m+H, m:m+W] vs second, torch MSELoss (mean)."""
    height, width = first.shape[1:3]
    mode = "reflect" if padding == "reflect" else "constant"
    moved = []
    for b in range(len(first)):
        canvas = np.pad(first[b], ((margin, margin), (margin, margin), (0, 0)), mode=mode)
        moved.append(bilinear_reference(canvas, grid[b], "zeros", False)[margin:margin + height,
                                                                          margin:margin + width])
    return np.mean((np.array(moved) - second) ** 2)


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_equivariance_loss_is_the_original_s_pad_warp_crop_mse(padding):
    rng = np.random.default_rng(7)
    first, second = rng.random((2, 10, 10, 3)), rng.random((2, 10, 10, 3))
    margin = canvas_margin(10)
    grid = tps_grid(random_tps_params(2, 8, **TPS_PRESETS["multi_object"]), 10 + 2 * margin, 10 + 2 * margin)
    loss = equivariance_loss(first.astype(np.float32), second.astype(np.float32), grid, padding=padding)
    expected = original_recipe(first, second, grid.numpy().astype(np.float64), margin, padding)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    assert loss.shape == () and loss.dtype == tf.float32


def test_equivariance_loss_is_zero_for_a_map_that_transforms_exactly():
    size, margin = 20, 4
    canvas = size + 2 * margin
    shift = np.array([2.0, -3.0])  # (x, y) pixels: output pixel p reads the input at p + shift
    grid = tps_grid(affine_params(np.eye(2), 2 * shift / canvas, batch=2, dtype=np.float64), canvas, canvas)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)

    def blob(row, col):  # two channels of smooth maps, negligible at the border
        g = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / 2)  # σ = 1 px
        return np.stack([g, 0.5 * g**2], axis=-1)

    first = np.stack([blob(10, 10), blob(11, 9)])
    second = np.stack([blob(10 - shift[1], 10 - shift[0]), blob(11 - shift[1], 9 - shift[0])])
    exact = equivariance_loss(first, second, grid, margin=margin)
    assert exact.dtype == tf.float64 and exact.numpy() < 1e-12
    wrong = np.stack([blob(10 - shift[1], 11 - shift[0]), blob(11 - shift[1], 10 - shift[0])])  # one pixel off
    assert equivariance_loss(first, wrong, grid, margin=margin).numpy() > 1e-3
    # rank-3 maps (the score map S) work the same way
    assert equivariance_loss(first[..., 0], second[..., 0], grid, margin=margin).numpy() < 1e-12


def test_equivariance_loss_gradients_reach_both_maps():
    rng = np.random.default_rng(9)
    first = tf.constant(rng.random((2, 10, 10)), tf.float64)
    second = tf.constant(rng.random((2, 10, 10)), tf.float64)
    grid = tps_grid(random_tps_params(2, 1, **TPS_PRESETS["mnist"]), 14, 14)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([first, second])
        loss = equivariance_loss(first, second, grid)
    grad_first, grad_second = tape.gradient(loss, [first, second])
    # d/d second of mean((moved − second)²) = −2 (moved − second) / numel
    moved = np.array([bilinear_reference(np.pad(first.numpy()[b, :, :, None], ((2, 2), (2, 2), (0, 0)), "reflect"),
                                         grid.numpy()[b].astype(np.float64), "zeros", False)[2:12, 2:12, 0]
                      for b in range(2)])
    moved_minus_second = moved - second.numpy()
    np.testing.assert_allclose(grad_second.numpy(), -2 * moved_minus_second / moved.size, atol=1e-6)
    # the reference maps: a directional finite difference
    direction = rng.standard_normal(first.shape)
    eps = 1e-6
    numeric = (equivariance_loss(first + eps * direction, second, grid) -
               equivariance_loss(first - eps * direction, second, grid)).numpy() / (2 * eps)
    np.testing.assert_allclose(np.sum(grad_first.numpy() * direction), numeric, rtol=1e-5)
    assert np.any(grad_first.numpy() != 0)


def test_equivariance_loss_rejects_a_grid_not_on_the_padded_canvas():
    maps = np.zeros((1, 10, 10), np.float32)
    with pytest.raises(ValueError, match="padded canvas"):
        equivariance_loss(maps, maps, np.zeros((1, 10, 10, 2), np.float32))  # m = 2: needs 14 × 14
    with pytest.raises(ValueError, match="same shape"):
        equivariance_loss(maps, np.zeros((1, 10, 8), np.float32), np.zeros((1, 14, 14, 2), np.float32))
    with pytest.raises(ValueError, match="padding"):
        equivariance_loss(maps, maps, np.zeros((1, 14, 14, 2), np.float32), padding="edge")


def test_random_parameters_take_a_run_time_batch_size():
    """A batch size known only at run time (a scalar tensor in a traced step) draws the python-int batch's
    parameters for the same seed."""
    draw = tf.function(lambda batch: random_tps_params(batch, 4, **TPS_PRESETS["mnist"]),
                       input_signature=[tf.TensorSpec([], tf.int32)])
    expected = random_tps_params(3, 4, **TPS_PRESETS["mnist"])
    got = draw(tf.constant(3))
    for key, value in expected.items():
        np.testing.assert_allclose(got[key].numpy(), value.numpy(), atol=1e-6, err_msg=key)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        random_tps_params(tf.constant(0), 4)
