"""The TUSK model (`tfobj/models/tusk/tusk.py`): the shared harness, the loss terms against numpy recomputations
from the model's own intermediate outputs, the alternating training step (what each step moves, which seeds
and descriptors it uses), a short fit on a trivial data set, prediction, input refusal and the SavedModel.

References: numpy transcriptions of the MSE, the cluster loss (softmin assignment), the equivariance loss
(reflection pad, `grid_sample` bilinear with zeros, crop, MSE), eqs. 7–8, the floor-then-remainder counts and
the sorted-projection sliced Wasserstein distance; the identity warp; the in-process model for the reloaded
`.keras` file and SavedModel.
"""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import harness
from tfobj import export_saved_model
from tfobj.models.tusk.tusk import EVALUATION_COUNTER, LOSS_KEYS, SERVING_KEYS, TUSK, image_pairs
from tfobj.models.tusk.tusk_config import TUSKConfig

# Tiny networks, 32×32 images; non-default values wherever a dropped field would show in the round trip.
TINY = TUSKConfig(num_keypoints=3, num_prototypes=4, kernel_size=5, softmax_temperature=0.3, feature_channels=8,
                  base_width=4, groups=2, inner_prototype_steps=2, num_projections=16, cluster_weight=0.02,
                  equivariance_heatmap_weight=0.03, equivariance_features_weight=50.0, prototype_learning_rate=0.05,
                  gmm_variance=1e-3, splat_variance=0.5)
# The multi-object variant, with every option of the original code switched on.
TINY_ALPHA = dataclasses.replace(
    TINY, alpha_blending=True, pair_padding="reflect", equivariance_heatmap_map="scoremap",
    mixing_variance_about="prototype", mixing_exploration=0.01, normalize_samples=True,
    prototype_descriptors="feature_step", descriptor_sampling="truncate", border="zeros", tps_align_corners=True,
    sample_allocation="original")
SIZE = 32
IMAGES = np.random.default_rng(0).random((2, SIZE, SIZE, 3)).astype(np.float32)


def squares(count, seed=0):
    """A trivial data set: one bright 8×8 square per black 32×32 image, at a random place."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, SIZE, SIZE, 3), np.float32)
    for image in images:
        row, col = rng.integers(4, SIZE - 12, 2)
        image[row:row + 8, col:col + 8] = rng.uniform(0.6, 1.0, 3)
    return images


# --- numpy references ---------------------------------------------------------------------------------------------


def np_grid_sample(images, grid):
    """`torch.nn.functional.grid_sample(bilinear, zeros, align_corners=False)`, NHWC, grid (x, y) in [-1, 1]."""
    images, grid = images.astype(np.float64), grid.astype(np.float64)
    batch, height, width, _ = images.shape
    x = ((grid[..., 0] + 1) * width - 1) / 2
    y = ((grid[..., 1] + 1) * height - 1) / 2
    x0, y0 = np.floor(x), np.floor(y)
    out = np.zeros(grid.shape[:3] + images.shape[3:])
    b = np.arange(batch)[:, None, None]
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            values = images[b, np.clip(yi, 0, height - 1).astype(int), np.clip(xi, 0, width - 1).astype(int)]
            out += np.where(inside, weight, 0.0)[..., None] * values
    return out


def np_equivariance(first, second, grid, margin):
    """train.py: ReflectionPad2d(m) the first maps, grid_sample with the pair's grid, crop, MSE."""
    if first.ndim == 3:
        first, second = first[..., None], second[..., None]
    padded = np.pad(first, ((0, 0), (margin, margin), (margin, margin), (0, 0)), mode="reflect")
    moved = np_grid_sample(padded, grid)[:, margin:margin + first.shape[1], margin:margin + first.shape[2]]
    return np.mean((moved - second) ** 2)


def np_unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_ratios(points, prototypes, labels, exploration, about):
    """Eqs. 7–8 as the seed writes them (σ_m the mean over channels of D_m's variance about `about`)."""
    count, num = len(points), len(prototypes)
    sigma = np.ones(num)
    ratio = np.zeros(num)
    for m in range(num):
        members = points[labels == m]
        ratio[m] = len(members) / count
        if len(members):
            centre = members.mean(0) if about == "mean" else prototypes[m]
            sigma[m] = np.mean((members - centre) ** 2)
    alpha = ratio + exploration + np.var(sigma)
    return alpha / alpha.sum()


def np_sliced_wasserstein(a, b, projections):
    pa = np.sort(projections @ a.T, axis=1)  # [P, N]
    pb = np.sort(projections @ b.T, axis=1)
    return np.mean(np.sum((pa - pb) ** 2, axis=0))


# --- the harness --------------------------------------------------------------------------------------------------


def test_config_round_trip():
    harness.check_config_round_trip(TUSK, {"config": TINY_ALPHA, "seed": 5, "name": "my_tusk", "dtype": "float32"},
                                    IMAGES)


def test_from_config_rejects_unknown_fields():
    config = TUSK(TINY).get_config()
    config["config"] = dict(dataclasses.asdict(TINY), num_keypionts=3)
    with pytest.raises(ValueError, match="num_keypionts"):
        TUSK.from_config(config)


def test_eager_matches_tf_function():
    harness.check_eager_matches_tf_function(TUSK(TINY, seed=1), IMAGES)


@pytest.mark.parametrize("config", [TINY, TINY_ALPHA], ids=["sparse", "alpha"])
def test_output_contract(config):
    b, k, m, f = 2, config.num_keypoints, config.num_prototypes, config.feature_channels
    contract = {"keypoints": ((b, k, 2), "float32"), "scores": ((b, k), "float32"),
                "prototype_ids": ((b, k), "int32"), "valid": ((b, k), "bool"),
                "reconstruction": ((b, SIZE, SIZE, 3), "float32"), "descriptors": ((b, k, f), "float32"),
                "assignment": ((b, k, m), "float32"), "heatmap": ((b, SIZE, SIZE), "float32"),
                "scoremap": ((b, SIZE, SIZE), "float32"), "features": ((b, SIZE, SIZE, f), "float32"),
                "peaks": ((b, k, 2), "int32")}
    if config.alpha_blending:
        contract.update(masks=((b, k, SIZE, SIZE), "float32"), rgb=((b, k, SIZE, SIZE, 3), "float32"))
    model = TUSK(config, seed=1)
    harness.check_output_contract(model, IMAGES, contract)
    outputs = model(IMAGES)
    assert ("masks" in outputs) == config.alpha_blending
    keypoints = outputs["keypoints"].numpy()
    assert np.all((keypoints >= 0) & (keypoints <= SIZE - 1))
    # prototype_ids: a nearest unit prototype of each descriptor (numpy)
    prototypes = np_unit(model.prototype_bank.prototype_weights.numpy())
    distances = np.mean((outputs["descriptors"].numpy()[..., None, :] - prototypes) ** 2, -1)
    chosen = np.take_along_axis(distances, outputs["prototype_ids"].numpy()[..., None], -1)[..., 0]
    np.testing.assert_allclose(chosen, distances.min(-1), atol=1e-6)  # ties (a zero descriptor) either way


STEPPED_EPOCHS = 3  # the short run behind the saving, evaluation, prediction and export tests


def trained(epochs):
    """TUSK(TINY) through the harness' fit step, then `epochs` more steps at rate 1e-2 on the squares (one traced
    step function for both). Returns the model and its history."""
    keras.utils.set_random_seed(0)
    model = TUSK(TINY, seed=0)
    data = {"images": squares(4)}
    model(data["images"][:1])
    harness.check_fit_step(model, data, LOSS_KEYS)  # compiles Adam(1e-3); a gradient for every weight
    model.optimizer.learning_rate.assign(1e-2)  # a quicker descent for the short run (the same traced step)
    history = model.fit(data, batch_size=4, epochs=epochs, verbose=0, shuffle=False)
    return model, history.history


@pytest.fixture(scope="module")
def stepped():
    """A trained, compiled TUSK(TINY) after a few steps: for the tests of saving, evaluation, prediction, export."""
    return trained(STEPPED_EPOCHS)


@pytest.fixture(scope="module")
def fitted():
    """TUSK(TINY) after 40 steps: for the test that the loss falls (slow)."""
    return trained(40)


def test_fit_step_logs_every_term(stepped):
    _, history = stepped
    assert set(LOSS_KEYS) <= set(history)
    for key in LOSS_KEYS:
        assert np.all(np.isfinite(history[key])), key


@pytest.mark.slow
def test_reconstruction_falls_on_a_trivial_data_set(fitted):
    """On black images with one square the sigmoid decoder starts near 0.5 everywhere (MSE ≈ 0.24); after 40
    steps the reconstruction error is below half its first value (measured: 0.24 -> 0.05), and the total loss
    and the prototypes' sliced Wasserstein distance have fallen too."""
    _, history = fitted
    first, last = np.mean(history["reconstruction"][:3]), np.mean(history["reconstruction"][-3:])
    assert last < 0.5 * first, (first, last)
    assert np.mean(history["loss"][-3:]) < np.mean(history["loss"][:3])
    assert np.mean(history["sliced_wasserstein"][-3:]) < np.mean(history["sliced_wasserstein"][:3])


def test_keras_file_in_fresh_process(stepped, tmp_path, monkeypatch):
    """The trained, compiled model (with both optimisers' state) reloads in a new process. Until
    tfobj/__init__.py lists tfobj.models.tusk.tusk in `_KERAS_MODULES` (tests/test_public_api.py checks that
    list), the fresh process imports the module itself."""
    import tfobj

    if "tfobj.models.tusk.tusk" not in tfobj._KERAS_MODULES:
        monkeypatch.setattr(harness, "_LOAD_IN_FRESH_PROCESS", harness._LOAD_IN_FRESH_PROCESS.replace(
            "import tfobj  #", "import tfobj.models.tusk.tusk  #"))
    model, _ = stepped
    harness.check_keras_file_in_fresh_process(model, IMAGES, tmp_path)
    loaded = keras.models.load_model(tmp_path / "model.keras")  # the training state, in this process
    assert int(model.prototype_optimizer.iterations.numpy()) == (1 + STEPPED_EPOCHS) * TINY.inner_prototype_steps
    for name, ours, theirs in (("prototype_optimizer", model.prototype_optimizer, loaded.prototype_optimizer),
                               ("optimizer", model.optimizer, loaded.optimizer)):
        assert len(ours.variables) == len(theirs.variables), name
        for a, b in zip(ours.variables, theirs.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{name}: {a.path}")
    assert int(loaded.noise_seed.numpy()) == int(model.noise_seed.numpy()) == 0


# --- the loss terms -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [TINY, TINY_ALPHA], ids=["sparse", "alpha"])
def test_feature_loss_terms_match_numpy(config):
    model = TUSK(config, seed=2)
    pairs = model.image_pairs(IMAGES, seed=7)
    outputs = model(pairs["images"], training=True)
    terms = {key: float(value) for key, value in model.loss_terms(pairs, outputs).items()}
    x = pairs["images"].numpy().astype(np.float64)
    out = {key: value.numpy().astype(np.float64) if value.dtype.is_floating else value.numpy()
           for key, value in outputs.items()}
    grid = pairs["grid"].numpy()
    assert x.shape == (4, SIZE, SIZE, 3) and grid.shape == (2, SIZE + 12, SIZE + 12, 2)  # m = int(32 / 5) = 6
    expected = {"reconstruction": np.mean((out["reconstruction"] - x) ** 2)}
    prototypes = np_unit(model.prototype_bank.prototype_weights.numpy())
    distances = np.mean((out["descriptors"][..., None, :] - prototypes) ** 2, -1)  # [2B, K, M]
    logits = -config.assignment_temperature * distances
    log_p = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
    expected["cluster"] = -np.mean(np.max(log_p, -1))
    maps = out["heatmap" if config.equivariance_heatmap_map == "heatmap" else "scoremap"]
    expected["equivariance_heatmap"] = np_equivariance(maps[:2], maps[2:], grid, 6)
    expected["equivariance_features"] = np_equivariance(out["features"][:2], out["features"][2:], grid, 6)
    for key, value in expected.items():
        np.testing.assert_allclose(terms[key], value, rtol=2e-4, atol=1e-7, err_msg=key)
    total = (config.reconstruction_weight * expected["reconstruction"] + config.cluster_weight * expected["cluster"]
             + config.equivariance_heatmap_weight * expected["equivariance_heatmap"]
             + config.equivariance_features_weight * expected["equivariance_features"])
    np.testing.assert_allclose(float(model.compute_loss(pairs, None, outputs)), total, rtol=2e-4)
    assert expected["equivariance_features"] > 0 and expected["equivariance_heatmap"] > 0


def test_unpaired_images_have_no_equivariance_terms():
    model = TUSK(TINY, seed=2)
    terms = model.loss_terms({"images": IMAGES}, model(IMAGES))
    assert float(terms["equivariance_heatmap"]) == 0.0 == float(terms["equivariance_features"])
    assert float(terms["reconstruction"]) > 0


@pytest.mark.parametrize("config", [TINY, TINY_ALPHA], ids=["seed", "original"])
def test_prototype_loss_matches_numpy(config):
    """Table 7 steps 1–3: nearest prototypes, eqs. 7–8 (each variant), the counts (the original's
    floor-then-remainder; the systematic ones of some offset u), GMM samples around the prototypes in prototype
    order, and the sorted-projection distance."""
    model = TUSK(config, seed=3)
    descriptors = model(IMAGES)["descriptors"]
    out = {key: value.numpy() for key, value in model.prototype_loss(descriptors, tf.constant([4, 9])).items()}
    points = descriptors.numpy().reshape(-1, config.feature_channels).astype(np.float64)  # unit (or 0: F = 0 there)
    prototypes = np_unit(model.prototype_bank.prototype_weights.numpy())
    distances = np.mean((points[:, None] - prototypes) ** 2, -1)  # [N, M]
    labels = out["labels"]  # a nearest prototype (a zero descriptor, F = 0 there, is equally near all)
    np.testing.assert_allclose(np.take_along_axis(distances, labels[:, None], 1)[:, 0], distances.min(1), atol=1e-6)
    ratios = np_ratios(points, prototypes, labels, config.mixing_exploration, config.mixing_variance_about)
    np.testing.assert_allclose(out["ratios"], ratios, rtol=1e-5)
    if config.sample_allocation == "original":
        counts = [int(np.floor(r * len(points))) for r in ratios[:-1]]
        candidates = [counts + [len(points) - sum(counts)]]
    else:  # the points u, u + 1, ... in units of N·π, for offsets u on a grid: every count vector u can give
        ends = np.cumsum(ratios) * len(points)
        candidates = [np.diff(np.concatenate([[0], np.ceil(ends - u).clip(0, len(points))])).astype(int)
                      for u in np.arange(1000) / 1000]
        for counts in candidates:
            counts[-1] += len(points) - counts.sum()
    if config.normalize_samples:
        np.testing.assert_allclose(np.linalg.norm(out["samples"], axis=1), 1.0, rtol=1e-5)
    # every coordinate within 6 standard deviations of its prototype (Σ = gmm_variance·I), for one of the counts
    errors = [np.max(np.abs(out["samples"] - np.repeat(prototypes, counts, axis=0))) for counts in candidates]
    assert min(errors) < 6 * np.sqrt(config.gmm_variance) + 0.05 * config.normalize_samples
    assert out["projections"].shape == (config.num_projections, config.feature_channels)
    np.testing.assert_allclose(out["loss"], np_sliced_wasserstein(out["samples"], points, out["projections"]),
                               rtol=1e-5)


# --- the alternating training step ----------------------------------------------------------------------------------


def weights_of(model):
    return {v.path: v.numpy().copy() for v in model.trainable_variables}


def test_feature_step_moves_everything_but_the_prototypes():
    model = TUSK(dataclasses.replace(TINY, inner_prototype_steps=0), seed=4)
    model(IMAGES)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = weights_of(model)
    logs = model.train_step({"images": tf.constant(IMAGES)})
    after = weights_of(model)
    prototypes = model.prototype_bank.prototype_weights.path
    np.testing.assert_array_equal(after[prototypes], before[prototypes])
    unchanged = [path for path in before if path != prototypes and np.array_equal(after[path], before[path])]
    assert not unchanged, unchanged
    assert int(model.prototype_optimizer.iterations.numpy()) == 0 and int(model.optimizer.iterations.numpy()) == 1
    assert set(logs) == set(LOSS_KEYS)


def test_prototype_step_moves_only_the_prototypes():
    """Through the whole training step: the compiled optimizer at rate 0 leaves the networks exactly as they
    were, so only the prototype step's updates show; it makes `inner_prototype_steps` updates."""
    model = TUSK(TINY, seed=4)
    model(IMAGES)
    model.compile(optimizer=keras.optimizers.Adam(0.0))
    before = weights_of(model)
    model.train_step({"images": tf.constant(IMAGES)})
    after = weights_of(model)
    prototypes = model.prototype_bank.prototype_weights.path
    assert not np.allclose(after[prototypes], before[prototypes])
    for path in before:
        if path != prototypes:
            np.testing.assert_array_equal(after[path], before[path], err_msg=path)
    assert int(model.prototype_optimizer.iterations.numpy()) == TINY.inner_prototype_steps


@pytest.mark.parametrize("config", [TINY, TINY_ALPHA], ids=["updated", "feature_step"])
def test_training_step_reports_the_distance_its_seeds_and_descriptors_give(config):
    """The logged sliced Wasserstein distance is that of the prototypes before the step against the descriptors
    of the pairs drawn from (seed, step 0): of the updated encoder ("updated", as the original's second forward
    pass) or of the feature step's forward pass ("feature_step"). Likewise the feature terms."""
    model = TUSK(config, seed=6)
    model(IMAGES)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    prototypes_before = model.prototype_bank.prototype_weights.numpy().copy()
    pairs = model.image_pairs(IMAGES, model.step_seeds(0)[0])
    feature_terms = model.loss_terms(pairs, model(pairs["images"], training=True))
    descriptors_before = model(pairs["images"])["descriptors"]
    logs = model.train_step({"images": tf.constant(IMAGES)})
    for key in ("reconstruction", "cluster", "equivariance_heatmap", "equivariance_features"):
        np.testing.assert_allclose(float(logs[key]), float(feature_terms[key]), rtol=1e-5, err_msg=key)
    descriptors = model(pairs["images"])["descriptors"] if config.prototype_descriptors == "updated" \
        else descriptors_before
    model.prototype_bank.prototype_weights.assign(prototypes_before)
    expected = model.prototype_loss(descriptors, model.step_seeds(0)[1])["loss"]
    np.testing.assert_allclose(float(logs["sliced_wasserstein"]), float(expected), rtol=1e-5)


def test_prototype_updates_are_adam_steps_on_the_distance():
    """One prototype update is Adam (the config's rate, betas, ε) on the gradient of `prototype_loss`."""
    config = dataclasses.replace(TINY, inner_prototype_steps=1)
    model = TUSK(config, seed=5)
    descriptors = model(IMAGES)["descriptors"]
    seeds = model.step_seeds(3)[1:]
    weights = model.prototype_bank.prototype_weights
    before = weights.numpy().astype(np.float64)
    with tf.GradientTape() as tape:
        loss = model.prototype_loss(descriptors, seeds[0])["loss"]
    gradient = tape.gradient(loss, weights).numpy().astype(np.float64)
    reported = model.prototype_step(descriptors, seeds)
    np.testing.assert_allclose(float(reported), float(loss), rtol=1e-6)
    # Keras' Adam, first step: m = (1 − β1)g, v = (1 − β2)g², update = lr·√(1 − β2)/(1 − β1) · m / (√v + ε)
    b1, b2, eps = config.prototype_beta_1, config.prototype_beta_2, config.prototype_epsilon
    m, v = (1 - b1) * gradient, (1 - b2) * gradient**2
    lr_t = config.prototype_learning_rate * np.sqrt(1 - b2) / (1 - b1)
    expected = before - lr_t * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_evaluation_reports_every_term_from_a_fixed_seed(stepped):
    model, _ = stepped
    x = squares(2, seed=3)
    first = model.evaluate(x, batch_size=2, verbose=0, return_dict=True)
    second = model.evaluate(x, batch_size=2, verbose=0, return_dict=True)
    assert set(first) == set(LOSS_KEYS) and first == second
    pairs = model.image_pairs(x, model.step_seeds(EVALUATION_COUNTER)[0])
    terms = model.loss_terms(pairs, model(pairs["images"]))
    np.testing.assert_allclose(first["reconstruction"], float(terms["reconstruction"]), rtol=1e-5)


def test_evaluate_adds_the_task_metric_given_the_ground_truth(stepped):
    """MNIST-Hard's truth: true centres at the model's own keypoints (+ 0.5, pixel centres) with 10-px radii give
    detection accuracy 1; moved 30 px away, 0. The loss terms are those of the plain call."""
    model, _ = stepped
    x = squares(2, seed=3)
    keypoints = model(x)["keypoints"].numpy()
    truth = {"images": x, "centres": keypoints + 0.5, "radii": np.full(keypoints.shape[:2], 10.0, np.float32),
             "classes": np.zeros(keypoints.shape[:2], np.int64)}
    plain = model.evaluate(x, batch_size=2, verbose=0, return_dict=True)
    logs = model.evaluate(truth, batch_size=2, verbose=0, return_dict=True)
    assert logs["detection_accuracy"] == 1.0 and 0.0 <= logs["classification_accuracy"] <= 1.0
    assert {key: logs[key] for key in plain} == plain
    far = dict(truth, centres=truth["centres"] + 30.0)
    assert model.evaluate(far, batch_size=2, verbose=0, return_dict=True)["detection_accuracy"] == 0.0


def test_evaluate_adds_the_foreground_ari_given_label_maps():
    """Multi-object truth: label maps equal to the argmax of the model's own alpha masks (+1: all foreground) give
    ARI 1; one label for the whole image against several predicted segments gives ARI 0."""
    model = TUSK(TINY_ALPHA, seed=0)
    x = squares(2, seed=4)
    model(x)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    own = np.argmax(model(x)["masks"].numpy(), axis=1) + 1  # [B, H, W]
    assert all(len(np.unique(labels)) > 1 for labels in own)
    logs = model.evaluate({"images": x, "label_map": own}, batch_size=2, verbose=0, return_dict=True)
    assert logs["ari"] == pytest.approx(1.0)
    one = model.evaluate({"images": x, "label_map": np.ones_like(own)}, batch_size=2, verbose=0, return_dict=True)
    assert one["ari"] == pytest.approx(0.0)


# --- pairs ----------------------------------------------------------------------------------------------------------


def test_identity_warps_give_identical_pairs():
    identity = (1.0, 0.0, 0.0, 0.0, 0.0)
    pairs = image_pairs(IMAGES, 3, identity, identity, "constant", 0.0)
    np.testing.assert_allclose(pairs["images"].numpy(), np.concatenate([IMAGES, IMAGES]), atol=2e-5)


def test_second_image_is_the_first_canvas_warped_by_the_returned_grid():
    """With an identity first warp, the second image is the padded image (here with constant 0.3) sampled at the
    returned grid (numpy `grid_sample`), cropped; the grid is the canvas', (H + 2·int(H/5))²."""
    identity = (1.0, 0.0, 0.0, 0.0, 0.0)
    pairs = image_pairs(IMAGES, 5, TINY.tps_warp, identity, "constant", 0.3)
    grid = pairs["grid"].numpy()
    margin = SIZE // 5
    canvas = np.pad(IMAGES, ((0, 0), (margin, margin), (margin, margin), (0, 0)), constant_values=0.3)
    expected = np_grid_sample(canvas, grid)[:, margin:margin + SIZE, margin:margin + SIZE]
    np.testing.assert_allclose(pairs["images"].numpy()[2:], expected, atol=2e-5)
    np.testing.assert_allclose(pairs["images"].numpy()[:2], IMAGES, atol=2e-5)
    assert not np.allclose(expected, IMAGES, atol=0.05)  # the second warp did something
    again = image_pairs(IMAGES, 5, TINY.tps_warp, identity, "constant", 0.3)
    np.testing.assert_array_equal(again["images"].numpy(), pairs["images"].numpy())  # stateless in the seed


# --- prediction, inputs, export -------------------------------------------------------------------------------------


def test_predict_objects_gives_every_slot_per_image(stepped):
    model, _ = stepped
    x = squares(3, seed=1)
    found = model.predict_objects(x, batch_size=2)
    out = model(x)
    assert len(found) == 3
    for index, objects in enumerate(found):
        for key in ("keypoints", "scores", "prototype_ids", "valid"):
            np.testing.assert_allclose(np.asarray(objects[key], np.float64), np.asarray(out[key][index], np.float64),
                                       rtol=1e-5, atol=1e-5, err_msg=key)
        assert objects["keypoints"].shape == (TINY.num_keypoints, 2) and objects["prototype_ids"].dtype == np.int32


@pytest.mark.parametrize("config", [TINY, TINY_ALPHA], ids=["sparse", "alpha"])
def test_decoded_prototypes_are_each_prototype_alone_at_the_centre(config):
    """`decode_prototypes` against the decoder's U-Net on a numpy splat: the unit prototype times the normalised
    Gaussian at (H // 2, W // 2); the plain decoder's sigmoid, or (alpha blending) the softmax over the prototype's
    layer and K − 1 empty ones (the U-Net on a zero splat): α = e^{a_m} / (e^{a_m} + (K − 1)·e^{a_0}),
    α·sigm(rgb_m) + (1 − α)·sigm(rgb_0). Chunks do not change the result."""
    model = TUSK(config, seed=3)
    model(IMAGES)
    height, width = SIZE, 16
    decoded = model.decode_prototypes(height, width).numpy()
    assert decoded.shape == (config.num_prototypes, height, width, 3)
    weights = model.prototype_bank.prototype_weights.numpy()
    units = weights / np.linalg.norm(weights, axis=-1, keepdims=True)  # [M, F]
    rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
    gauss = np.exp(-0.5 * ((rows - height // 2) ** 2 + (cols - width // 2) ** 2) / config.splat_variance)
    splats = units[:, None, None, :] * (gauss / gauss.sum())[None, :, :, None]  # [M, H, W, F]
    unet = model.decoder.unet
    raw = np.asarray(unet(tf.constant(splats, tf.float32)), np.float64)
    sigm = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    if config.alpha_blending:
        empty = np.asarray(unet(tf.zeros([1, height, width, config.feature_channels])), np.float64)
        weight, rest = np.exp(raw[..., 3:]), (config.num_keypoints - 1) * np.exp(empty[..., 3:])
        alpha = weight / (weight + rest)
        expected = alpha * sigm(raw[..., :3]) + (1 - alpha) * sigm(empty[..., :3])
    else:
        expected = sigm(raw)
    np.testing.assert_allclose(decoded, expected, atol=1e-5)
    assert np.ptp(decoded.reshape(len(decoded), -1), axis=0).max() > 1e-4  # the prototypes decode differently
    np.testing.assert_allclose(model.decode_prototypes(height, width, chunk=3).numpy(), decoded, atol=1e-5)
    for bad in (12, 0, 8.0, True):
        with pytest.raises(ValueError, match="decode_prototypes: height must be a positive multiple of 8"):
            model.decode_prototypes(bad, 16)
    with pytest.raises(ValueError, match="decode_prototypes: chunk must be a positive integer; got 0"):
        model.decode_prototypes(16, 16, chunk=0)


def test_decoded_prototypes_under_mixed_precision_are_float32_images():
    model = TUSK(TINY_ALPHA, seed=3, dtype="mixed_float16")
    decoded = model.decode_prototypes(16, 16)  # an unbuilt model builds itself
    assert decoded.dtype == tf.float32 and decoded.shape == (TINY_ALPHA.num_prototypes, 16, 16, 3)
    assert np.all(np.isfinite(decoded)) and 0 <= np.min(decoded) and np.max(decoded) <= 1


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, SIZE, SIZE), np.float32), r"shape \[B, H, W, 3\]"),
    (np.zeros((2, SIZE, SIZE, 1), np.float32), "must have 3 channels"),
    (np.zeros((2, 36, SIZE, 3), np.float32), "H must be a positive multiple of 8"),
    (np.zeros((0, SIZE, SIZE, 3), np.float32), r"empty batch \(0 images\)"),
    (np.zeros((1, SIZE, SIZE, 3), np.int32), "must be float"),
])
def test_bad_inputs_are_refused(images, message):
    with pytest.raises(ValueError, match=message):
        TUSK(TINY)(images)


def test_values_are_checked():
    model = TUSK(TINY)
    x = IMAGES.copy()
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        model(x)
    with pytest.raises(tf.errors.InvalidArgumentError, match="in \\[0, 1\\]"):
        model(IMAGES + 1.0)
    with pytest.raises(ValueError, match=r"empty batch \(0 images\)"):
        model.predict_objects(np.zeros((0, SIZE, SIZE, 3), np.float32))


@pytest.fixture(scope="module")
def served(stepped, tmp_path_factory):
    model, _ = stepped
    path = export_saved_model(model, tmp_path_factory.mktemp("tusk") / "saved_model")
    return tf.saved_model.load(str(path)).signatures["serving_default"]


@pytest.mark.slow
def test_the_served_model_runs_where_tfobj_cannot_be_imported(stepped, tmp_path):
    """serving_default in a fresh process without tfobj (as TF Serving), two batch sizes and two image sizes: the
    issue's outputs equal the in-process model's."""
    model, _ = stepped
    rng = np.random.default_rng(6)
    inputs = {f"b1_{SIZE}x{SIZE}": rng.random((1, SIZE, SIZE, 3)).astype(np.float32),
              "b3_24x40": rng.random((3, 24, 40, 3)).astype(np.float32)}
    path = export_saved_model(model, tmp_path / "saved_model")
    served = harness.served_in_fresh_process(path, inputs, tmp_path, argument="images")
    for name, images in inputs.items():
        expected = model(images)
        for key in ("keypoints", "scores", "prototype_ids", "reconstruction"):
            np.testing.assert_allclose(np.asarray(served[f"{name}/{key}"], np.float64),
                                       np.asarray(expected[key], np.float64), atol=1e-5, err_msg=f"{name}/{key}")
        assert served[f"{name}/prototype_ids"].dtype == np.int32


def test_the_served_model_matches_the_model_for_any_batch_and_size(stepped, served):
    model, _ = stepped
    for shape in ((1, SIZE, SIZE, 3), (3, 24, 40, 3)):
        x = np.random.default_rng(sum(shape)).random(shape).astype(np.float32)
        got = served(images=tf.constant(x))
        expected = model(x)
        assert set(got) == set(SERVING_KEYS)
        for key in SERVING_KEYS:
            assert got[key].dtype == expected[key].dtype, key
            np.testing.assert_allclose(np.asarray(got[key], np.float64), np.asarray(expected[key], np.float64),
                                       atol=1e-5, err_msg=key)
        assert got["keypoints"].shape == (shape[0], TINY.num_keypoints, 2)
        assert got["prototype_ids"].dtype == tf.int32


@pytest.mark.parametrize("shape, message", [
    ((1, 36, SIZE, 3), r"images H must be a positive multiple of 8; got H =\] \[36\]"),
    ((2, SIZE, 12, 3), r"images W must be a positive multiple of 8; got W =\] \[12\]"),
    ((0, SIZE, SIZE, 3), "images is an empty batch"),
])
def test_the_served_model_checks_sizes_at_run_time(served, shape, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served(images=tf.zeros(shape))


def test_the_served_model_checks_values(served):
    x = np.zeros((1, SIZE, SIZE, 3), np.float32)
    x[0, 3, 3, 1] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        served(images=tf.constant(x))
