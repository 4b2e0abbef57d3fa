"""SILOT over videos: the shared harness, each loss term against numpy, identities, the frame loops, tracks in the
MOTA format, export and bad input, and a short fit where the loss falls. Tiny networks on 3 frames of 24×24
(N = 4 discovery cells, K = 3 objects)."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import harness
from tfobj import export_saved_model
from tfobj.metrics import clear_mot_many
from tfobj.models.silot.silot import LOSS_KEYS, SERVING_KEYS, SILOT, SILOTTrack
from tfobj.models.silot.silot_config import SILOTConfig

H1 = (6, 6)  # Table 2: FC([N, N]), two hidden layers
TINY = SILOTConfig(
    num_objects=3, num_what=4, hidden_size=6, backbone_filters=8, backbone_features=8, passthrough_features=3,
    attention_features=5, object_size=(5, 5), discovery_spatial_hidden=H1, discovery_fuse_hidden=H1,
    discovery_where_hidden=H1, discovery_glimpse_hidden=H1, discovery_what_hidden=H1, discovery_depth_hidden=H1,
    discovery_pres_hidden=H1, propagation_object_hidden=H1, propagation_spatial_hidden=H1,
    propagation_glimpse_where_hidden=H1, propagation_first_glimpse_hidden=H1, propagation_where_hidden=H1,
    propagation_second_glimpse_hidden=H1, propagation_what_hidden=H1, propagation_depth_hidden=H1,
    propagation_pres_hidden=H1, decoder_hidden=H1)
# Every other option away from its default, for the config round trip and a fit step through those paths.
OTHER = dataclasses.replace(
    TINY, attention_std=0.2, attention_presence_weighted=False, propagation_attention=False, what_update="additive",
    propagation_size_prior="absolute", propagation_prior_hw=(-2.197, 0.5), renderer="original",
    background="learn_solid", pres_kl="original", concrete_temperature=0.7, training_wheels_steps=0,
    discovery_dropout=0.3, discovery_size_init=7.0, propagation_pres_init=2.0,
    propagation_where_std_at_prior=True)
B, T, S = 2, 2, 24  # frame 1 propagates frame 0's objects
K, N, A = TINY.num_objects, (S // 12) ** 2, TINY.num_what
VIDEOS = np.random.default_rng(0).random((B, T, S, S, 3)).astype(np.float32)
VIDEOS3 = np.random.default_rng(1).random((B, 3, S, S, 3)).astype(np.float32)


def videos(batch=B, frames=T, size=S, seed=0):
    return np.random.default_rng(seed).random((batch, frames, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    silot = SILOT(TINY, seed=1)
    silot(VIDEOS)
    return silot


def set_pres_bias(layer, value):
    """Sets the output bias of a cell's pres head: every logit ≈ value (the kernels are small at init)."""
    head = layer.cells.pres_net if hasattr(layer, "cells") else layer.pres_net
    bias = head.weights[-1]
    bias.assign(np.full(bias.shape, value, np.float32))


# --- The harness ---

def test_config_round_trip():
    harness.check_config_round_trip(SILOT, {"config": OTHER, "seed": 5, "name": "my_silot", "dtype": "float32"},
                                    VIDEOS)


def test_from_config_rejects_unknown_fields(model):
    config = model.get_config()
    config["config"] = dict(dataclasses.asdict(TINY), num_objcts=3)
    with pytest.raises(ValueError, match="num_objcts"):
        SILOT.from_config(config)


def test_eager_matches_tf_function(model):
    # Graph-mode fusion reorders float32 sums; the reconstruction's 24·24·3 values per frame agree to ~1e-5.
    harness.check_eager_matches_tf_function(model, VIDEOS, atol=1e-4, training=False)


@pytest.mark.parametrize("training", [False, True])
def test_output_contract(model, training):
    contract = {"reconstruction": ((B, T, S, S, 3), "float32"), "boxes": ((B, T, K, 4), "float32"),
                "z_pres": ((B, T, K), "float32"), "scores": ((B, T, K), "float32"), "ids": ((B, T, K), "int32"),
                "is_new": ((B, T, K), "bool"), "num_objects": ((B, T), "int32"), "z_what": ((B, T, K, A), "float32"),
                "depth": ((B, T, K), "float32"), "appearance": ((B, T, K, 5, 5, 3), "float32"),
                "alpha": ((B, T, K, 5, 5, 1), "float32"), "disc_pres": ((B, T, N, 1), "float32"),
                "prop_where_mean": ((B, T, K, 4), "float32"), "prior_pres_logits": ((B, T, K, 1), "float32")}
    harness.check_output_contract(model, VIDEOS, contract, training=training)
    out = model(VIDEOS, training=training)
    recon = out["reconstruction"].numpy()
    assert recon.min() >= 0 and recon.max() <= 1
    z_pres = out["z_pres"].numpy()
    if not training:  # the posterior mode: hard z_pres, counts of present objects
        assert set(np.unique(z_pres)) <= {0.0, 1.0}
    np.testing.assert_array_equal(out["num_objects"].numpy(), (z_pres > 0.5).sum(-1))


@pytest.mark.slow
def test_fit_step_gives_every_weight_a_gradient():
    """Three frames: frame 2 is the first whose inputs depend on the GRUs' outputs (the hidden state written at
    frame 1); the harness also checks every logged term is finite. The other options' paths (original renderer,
    learned background, additive what, no propagation attention) included."""
    model = SILOT(OTHER, seed=1)
    harness.check_fit_step(model, {"videos": VIDEOS3}, LOSS_KEYS)
    assert not model.discovery.cells.edge.trainable  # SPAIR's lateral-context latent, unused by SILOT


def test_keras_file_in_fresh_process(model, tmp_path, monkeypatch):
    """Until tfobj/__init__.py lists tfobj.models.silot.silot in `_KERAS_MODULES` (tests/test_public_api.py checks
    that list), the fresh process imports the module itself."""
    import tfobj

    if "tfobj.models.silot.silot" not in tfobj._KERAS_MODULES:
        monkeypatch.setattr(harness, "_LOAD_IN_FRESH_PROCESS", harness._LOAD_IN_FRESH_PROCESS.replace(
            "import tfobj  #", "import tfobj.models.silot.silot  #"))
    model.anneal(5000)  # annealed values other than a new model's
    try:
        harness.check_keras_file_in_fresh_process(model, VIDEOS, tmp_path, atol=1e-4)
        loaded = keras.models.load_model(tmp_path / "model.keras")
        assert float(loaded.count_prior_s) == pytest.approx(float(model.count_prior_s))
    finally:
        model.anneal(0)


# --- The loss, term by term, against numpy ---

def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def normal_kl(mean, std, prior_mean, prior_std):
    return np.log(prior_std / std) + (std ** 2 + (mean - prior_mean) ** 2) / (2 * prior_std ** 2) - 0.5


def count_prior_kl(q, samples, s):
    """The count prior's KL estimator in probability space, float64, cell by cell (supplement A, B; the original
    code's recursion): P(C = c) ∝ s(1 − s)^c, p_k = Σ_c P(C = c | prefix)(c − n)/(M − k)."""
    total = 0.0
    m = len(q)
    counts = np.arange(m + 1)
    posterior = s * (1 - s) ** counts
    posterior /= posterior.sum()
    n = 0
    for k in range(m):
        p1 = np.sum(posterior * np.clip((counts - n) / (m - k), 0, 1))
        beta = q[k]
        total += sum(b * (np.log(b) - np.log(p)) for b, p in ((beta, p1), (1 - beta, 1 - p1)) if b > 0)
        one = np.clip((counts - n) / (m - k), 0, 1)  # p(z_k = 1 | C = c, prefix)
        take = one if samples[k] > 0.5 else np.clip((m - k - counts + n) / (m - k), 0, 1)
        posterior = posterior * take
        posterior /= posterior.sum()
        n += samples[k] > 0.5
    return total


def logistic_log_pdf(x, loc, scale):
    z = (x - loc) / scale
    return -z - np.log(scale) - 2 * np.log1p(np.exp(-z))


@pytest.mark.parametrize("pres_kl", ["presence", "original"])
def test_loss_terms_against_numpy(pres_kl):
    config = dataclasses.replace(TINY, pres_kl=pres_kl, propagation_size_prior="absolute",
                                 propagation_prior_hw=(-2.197, 0.5), concrete_temperature=0.7)
    model = SILOT(config, seed=3)
    model(VIDEOS)
    model.anneal(6000)  # s ≈ 0.5: the count prior's recursion at work
    out = model(VIDEOS, training=True)
    terms = {key: value.numpy() for key, value in model.loss_terms(VIDEOS, out).items()}
    o = {key: value.numpy().astype(np.float64) for key, value in out.items()}
    x = VIDEOS.astype(np.float64)
    p = np.clip(o["reconstruction"], 1e-6, 1 - 1e-6)
    expected = {"nll": -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum((1, 2, 3, 4))}

    def weighted(kl, weight):
        return (kl.sum(-1) * weight).sum((1, 2))

    disc_w = o["disc_pres"][..., 0]
    expected["kl/z_where"] = weighted(normal_kl(o["disc_where_mean"], o["disc_where_std"],
                                                np.array([0, 0, -2.2, -2.2]), np.array([1, 1, 0.5, 0.5])), disc_w)
    expected["kl/z_what"] = weighted(normal_kl(o["disc_what_mean"], o["disc_what_std"], 0, 1), disc_w)
    expected["kl/z_depth"] = weighted(normal_kl(o["disc_depth_mean"], o["disc_depth_std"], 0, 1), disc_w)
    prop_w, previous = o["prop_pres"][..., 0], o["prop_previous_pres"][..., 0]
    where_mean = np.concatenate([o["prop_where_mean"][..., :2], o["prop_size_logit_mean"]], -1)  # "absolute"
    expected["kl/prop_where"] = weighted(normal_kl(where_mean, o["prop_where_std"], np.array([0, 0, -2.197, -2.197]),
                                                   np.array([0.3, 0.3, 0.5, 0.5])), prop_w)
    expected["kl/prop_what"] = weighted(normal_kl(o["prop_what_mean"], o["prop_what_std"], 0, 0.4), prop_w)
    expected["kl/prop_depth"] = weighted(normal_kl(o["prop_depth_mean"], o["prop_depth_std"], 0, 1), prop_w)
    for key in ("where", "what", "depth"):
        expected[f"kl/prior_{key}"] = weighted(normal_kl(o[f"prop_{key}_mean"], o[f"prop_{key}_std"],
                                                         o[f"prior_{key}_mean"], o[f"prior_{key}_std"]), prop_w)
    sample, scale = o["prop_pres_pre_sigmoid"][..., 0], 1 / 0.7
    concrete = (logistic_log_pdf(sample, o["prop_pres_logits"][..., 0] * scale, scale)
                - logistic_log_pdf(sample, o["prior_pres_logits"][..., 0] * scale, scale))
    expected["kl/prior_pres"] = (concrete * previous).sum((1, 2))
    s = float(model.count_prior_s)
    prop_q = sigmoid(o["prop_pres_logits"][..., 0])
    disc_q = sigmoid(o["disc_pres_logits"][..., 0])
    if pres_kl == "presence":
        prop_q, disc_q = previous * prop_q, o["disc_mask"][..., None] * disc_q
    q = np.concatenate([prop_q, disc_q], -1)
    samples = np.concatenate([prop_w, disc_w], -1)
    expected["kl/z_pres"] = np.array([sum(count_prior_kl(q[b, t], samples[b, t], s) for t in range(T))
                                      for b in range(B)])
    assert set(terms) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(terms[key], value, rtol=2e-4, atol=1e-3, err_msg=key)
    # Frame 0 has no propagated objects: their terms are zero there; the later frames' are not.
    assert np.all(previous[:, 0] == 0) and np.all(prop_w[:, 0] == 0)
    assert np.all(expected["kl/prop_where"] > 0) and np.all(expected["kl/prior_where"] > 0)
    # compute_loss: the batch mean of the terms' sum, each logged.
    for tracker in model.trackers.values():
        tracker.reset_state()
    loss = model.compute_loss(VIDEOS, None, out)
    np.testing.assert_allclose(loss.numpy(), np.mean(sum(terms.values())), rtol=1e-5)
    for key in LOSS_KEYS[1:]:
        np.testing.assert_allclose(model.trackers[key].result().numpy(), terms[key].mean(), rtol=1e-5, atol=1e-6)
    # The diagnostics: objects present in frame 0, and present new (discovered) objects per later frame; on
    # hand-set presences and new-flags (they do not enter the loss) so that both counts are known and nonzero.
    z_pres = np.zeros((B, T, K), np.float32)
    is_new = np.zeros((B, T, K), bool)
    z_pres[0, 0, :2] = 1.0  # video 0: two objects in frame 0 ...
    z_pres[0, 1:, :3] = 0.9  # ... three later, the third new in frame 1 (and 0.4: absent, new or not)
    z_pres[1, 1:, 0] = 0.4
    is_new[0, 1, 2] = is_new[1, 1:, 0] = True
    for tracker in model.trackers.values():
        tracker.reset_state()
    model.compute_loss(VIDEOS, None, dict(out, z_pres=tf.constant(z_pres), is_new=tf.constant(is_new)))
    assert model.trackers["num_objects_first"].result().numpy() == pytest.approx(2 / B)
    assert model.trackers["num_new_later"].result().numpy() == pytest.approx(1 / (B * (T - 1)))
    for tracker in model.trackers.values():  # one-frame videos (the curriculum's first stage may have one)
        tracker.reset_state()
    model.compute_loss(VIDEOS[:, :1], None, model(VIDEOS[:, :1], training=True))
    assert model.trackers["num_new_later"].result().numpy() == 0.0


def test_discovery_dropout_drops_whole_frames_in_training_only():
    config = dataclasses.replace(TINY, discovery_dropout=0.5)
    model = SILOT(config, seed=4)
    x = videos(16, frames=3, seed=2)
    mask = model(x, training=True)["disc_mask"].numpy()  # [B, T]
    assert np.all(mask[:, 0] == 1) and set(np.unique(mask[:, 1:])) == {0.0, 1.0}
    out = model(x, training=True)
    dropped = out["disc_mask"].numpy() == 0
    assert np.all(out["disc_pres"].numpy()[dropped] == 0)
    assert np.all(model(x, training=False)["disc_mask"].numpy() == 1)


# --- Identities ---

def test_ids_persist_for_propagated_objects_and_are_new_for_discovered_ones(model):
    """Every discovered object present (pres logits +8): frame 0 takes the first K of them, ids 1..K. A propagation
    that keeps every object (+8) keeps the slots and ids; one that drops every object (−8) frees the slots to new
    discovered objects with new ids."""
    set_pres_bias(model.discovery, 8.0)
    try:
        set_pres_bias(model.propagation, 8.0)
        out = model(VIDEOS3, training=False)
        np.testing.assert_array_equal(out["ids"].numpy(), np.broadcast_to(np.arange(1, K + 1), (B, 3, K)))
        np.testing.assert_array_equal(out["is_new"].numpy()[:, 0], True)
        np.testing.assert_array_equal(out["is_new"].numpy()[:, 1:], False)
        set_pres_bias(model.propagation, -8.0)
        out = model(VIDEOS3, training=False)
        expected = np.arange(1, 3 * K + 1).reshape(3, K)
        np.testing.assert_array_equal(out["ids"].numpy(), np.broadcast_to(expected, (B, 3, K)))
        np.testing.assert_array_equal(out["is_new"].numpy(), True)
    finally:
        set_pres_bias(model.discovery, 0.0)
        set_pres_bias(model.propagation, 0.0)


def test_ids_follow_the_rule_on_random_tracks(model):
    """Sampled hard z_pres (about half of the objects kept or discovered): checked against the rule in plain
    Python. A present object that was not newly discovered has its slot's id of the previous frame; newly
    discovered present objects get the next unused ids in slot order; absent slots have id 0."""
    out = model(videos(4, frames=5, seed=7), training=False, sample=True)
    ids, new, pres = out["ids"].numpy(), out["is_new"].numpy(), out["z_pres"].numpy()
    assert set(np.unique(pres)) == {0.0, 1.0}
    kept = births = 0
    for b in range(ids.shape[0]):
        next_id, slots = 1, [0] * K
        for t in range(ids.shape[1]):
            for k in range(K):
                if new[b, t, k]:
                    slots[k] = next_id if pres[b, t, k] else 0
                    next_id += bool(pres[b, t, k])
                    births += bool(pres[b, t, k])
                elif pres[b, t, k]:
                    kept += 1
                assert ids[b, t, k] == (slots[k] if pres[b, t, k] else 0), (b, t, k)
    assert kept > 0 and births > K  # both paths seen


# --- The frame loops ---

def test_graph_loop_over_unknown_frames_matches_the_python_loop(model):
    """T unknown (the SavedModel's signature): a tf.while_loop over the same frame function; sampled latents with
    the same noise seed give the same outputs as the unrolled Python loop."""
    x = videos(2, frames=4, seed=3)
    loop = tf.function(lambda v: model(v, training=False), input_signature=[tf.TensorSpec([None] * 4 + [3])])
    harness.assert_outputs_close(loop(x), model(x, training=False), atol=1e-4, what="while loop vs Python loop")
    one = videos(1, frames=1, seed=4)
    harness.assert_outputs_close(loop(one), model(one, training=False), atol=1e-4, what="one frame")
    # frame_loop="while": the graph loop for a static T too (eagerly its body runs as a Python loop); sampled.
    graph = SILOT(dataclasses.replace(TINY, frame_loop="while"), seed=5)
    unrolled = SILOT(TINY, seed=5)
    graph(x[:1]), unrolled(x[:1])
    graph.set_weights(unrolled.get_weights())
    harness.assert_outputs_close(graph(x, training=True), unrolled(x, training=True), atol=1e-5,
                                 what="frame_loop while vs python")


def test_prior_propagation_from_frame(model):
    """G.1: from `prior_from_frame` on, discovery is off and the learned prior carries the objects."""
    set_pres_bias(model.discovery, 8.0)
    try:
        out = model(videos(2, frames=4, seed=5), training=False, prior_from_frame=2)
    finally:
        set_pres_bias(model.discovery, 0.0)
    assert np.all(out["disc_mask"].numpy()[:, 2:] == 0) and np.all(out["disc_mask"].numpy()[:, :2] == 1)
    assert not np.any(out["is_new"].numpy()[:, 2:] & (out["z_pres"].numpy()[:, 2:] > 0.5))


# --- Tracks for MOTA ---

def test_predict_objects_gives_tracks_that_mota_scores(model):
    set_pres_bias(model.discovery, 8.0)
    set_pres_bias(model.propagation, 8.0)
    try:
        x = videos(3, seed=6)
        tracks = model.predict_objects(x, batch_size=2)
        out = model(x, training=False)
    finally:
        set_pres_bias(model.discovery, 0.0)
        set_pres_bias(model.propagation, 0.0)
    assert len(tracks) == 3 and all(isinstance(track, SILOTTrack) for track in tracks)
    for v, track in enumerate(tracks):
        assert len(track.ids) == len(track.boxes) == len(track.scores) == T
        for t in range(T):
            present = out["z_pres"].numpy()[v, t] > 0.5
            np.testing.assert_array_equal(track.ids[t], out["ids"].numpy()[v, t][present])
            np.testing.assert_allclose(track.boxes[t], out["boxes"].numpy()[v, t][present], atol=1e-5)
            np.testing.assert_allclose(track.scores[t], out["scores"].numpy()[v, t][present], atol=1e-5)
    # Its own tracks as ground truth: MOTA 1, no switches (the format of tfobj.experiments' tracking_scores).
    scores = clear_mot_many([(track.ids, track.boxes, track.ids, track.boxes) for track in tracks])
    assert scores["mota"] == 1.0 and scores["num_switches"] == 0 and scores["num_objects"] == 3 * T * K


def test_evaluate_adds_tracking_scores_given_the_ground_truth():
    """`evaluate` on a video dataset's dict adds CLEAR MOT; here the truth is the model's own tracks (MOTA 1, no
    count error), and a truth with every object moved away gives no match (MOTA 1 - (misses + FP) / objects)."""
    silot = SILOT(TINY, seed=1)
    silot.compile(optimizer="adam")
    x = videos(3, seed=6)
    out = silot(x, training=False)
    present = out["z_pres"].numpy() > 0.5
    truth = {"videos": x, "track_ids": np.where(present, out["ids"].numpy(), 0), "boxes": out["boxes"].numpy()}
    logs = silot.evaluate(truth, verbose=0, return_dict=True)
    n = int(present.sum())
    assert n > 0 and "loss" in logs and "nll" in logs
    assert logs["mota"] == 1.0 and logs["count_abs_error"] == 0.0 and logs["num_switches"] == 0
    far = dict(truth, boxes=np.clip(truth["boxes"] + 2.0, 0.0, 3.0))  # every true box outside the frame
    logs = silot.evaluate(far, verbose=0, return_dict=True)
    assert logs["mota"] == pytest.approx(1.0 - 2 * n / n) and logs["count_abs_error"] == 0.0
    plain = silot.evaluate(x, verbose=0, return_dict=True)  # no truth: the loss terms only
    assert "mota" not in plain and plain["loss"] == pytest.approx(logs["loss"], rel=1e-5)
    with pytest.raises(ValueError, match=r"part of the tracking ground truth but not \['track_ids'\]"):
        silot.evaluate({"videos": x, "boxes": truth["boxes"]}, verbose=0)


# --- Bad input ---

@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 24, 24, 3), np.float32), r"shape \[B, T, H, W, 3\]"),
    (np.zeros((1, 2, 24, 24, 1), np.float32), "3 channels"),
    (np.zeros((1, 2, 30, 24, 3), np.float32), "H must be a positive multiple of 12"),
    (np.zeros((1, 2, 24, 24, 3), np.int32), "must be float"),
    (np.zeros((0, 2, 24, 24, 3), np.float32), r"empty batch \(0 videos\)"),
    (np.zeros((1, 0, 24, 24, 3), np.float32), r"zero frames"),
    (np.zeros((1, 2, 12, 12, 3), np.float32), "at least K cells"),
])
def test_bad_shapes(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model(bad)


@pytest.mark.parametrize("value, message", [(np.nan, "NaN or Inf"), (1.5, "value > 1")])
def test_bad_values(model, value, message):
    x = videos(1, frames=2)
    x[0, 1, 3, 3, 0] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model(x)


def test_empty_batches_are_refused_by_predict(model):
    empty = np.zeros((0, 2, 24, 24, 3), np.float32)
    for call in (lambda: model.predict(empty, verbose=0), lambda: model.predict_objects(empty),
                 lambda: model.evaluate(empty, verbose=0), lambda: model.evaluate({"videos": empty}, verbose=0)):
        with pytest.raises(ValueError, match=r"empty batch \(0 videos\)"):
            call()


def test_initial_biases_set_the_first_boxes_size_and_propagated_presence():
    config = dataclasses.replace(TINY, discovery_size_init=7.0, propagation_pres_init=3.0)
    silot = SILOT(config, seed=1)
    out = silot(np.zeros((B, T, S, S, 3), np.float32))  # zero frames: every head outputs its bias
    size = 7.0 / 48.0
    np.testing.assert_allclose(out["disc_where_mean"].numpy()[..., 2:4], np.log(size / (1 - size)), rtol=1e-5)
    boxes = out["boxes"].numpy()[:, 0]  # [B, K, 4] frame 0: every slot holds a discovered object
    heights = (boxes[..., 2] - boxes[..., 0]) * S
    np.testing.assert_allclose(heights, 7.0, rtol=1e-5)
    np.testing.assert_array_equal(silot.propagation.pres_net.dense_layers[-1].bias.numpy(), [3.0])
    at_prior = SILOT(dataclasses.replace(TINY, propagation_where_std_at_prior=True), seed=1)
    at_prior(VIDEOS)
    bias = at_prior.propagation.where_net.dense_layers[-1].bias.numpy()  # y, x, h, w means, then raw stds
    np.testing.assert_array_equal(bias[:4], 0.0)
    np.testing.assert_allclose(2.0 / (1.0 + np.exp(-bias[4:])), 0.3, rtol=1e-5)  # Table 1's (0, 0.3) priors
    default = SILOT(TINY, seed=1)
    default(VIDEOS)
    np.testing.assert_array_equal(default.discovery.cells.box_net.dense_layers[-1].bias.numpy(), 0.0)
    with pytest.raises(ValueError, match="discovery_size_init must be None or a size in pixels"):
        dataclasses.replace(TINY, discovery_size_init=48.0)


@pytest.mark.parametrize("what_update", ["gated", "additive"])
def test_propagation_identity_init_carries_objects_unchanged_at_first(what_update):
    config = dataclasses.replace(TINY, propagation_identity_init=0.05, what_update=what_update)
    out = {key: value.numpy() for key, value in SILOT(config, seed=1)(VIDEOS3).items()}  # posterior means
    for t in (1, 2):
        np.testing.assert_array_equal(out["prop_where_mean"][:, t], 0.0)  # no move, no resize
        np.testing.assert_allclose(out["prop_where_std"][:, t], 0.05, rtol=1e-5)
        previous = out["z_what"][:, t - 1]  # [B, K, A]: slot k of frame t - 1 is propagated into slot k
        if what_update == "gated":  # mean - previous = (f - 1)·previous with f = sigm(4 + 1)·0.9999
            f = 0.9999 / (1.0 + np.exp(-5.0))
            np.testing.assert_allclose(out["prop_what_mean"][:, t], (f - 1.0) * previous, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(out["prop_what_std"][:, t], 2 * (1 - f) * 0.05, rtol=1e-3)
        else:
            np.testing.assert_array_equal(out["prop_what_mean"][:, t], 0.0)
            np.testing.assert_allclose(out["prop_what_std"][:, t], 0.05, rtol=1e-5)
    default = {key: value.numpy() for key, value in SILOT(TINY, seed=1)(VIDEOS3).items()}
    assert np.abs(default["prop_where_mean"][:, 1:]).min() > 0  # Keras' initial weights move every object
    with pytest.raises(ValueError, match="cannot be combined with propagation_where_std_at_prior"):
        dataclasses.replace(TINY, propagation_identity_init=0.05, propagation_where_std_at_prior=True)
    with pytest.raises(ValueError, match=r"propagation_identity_init must be None or a standard deviation in \(0, 2\)"):
        dataclasses.replace(TINY, propagation_identity_init=2.0)


def test_bad_config_values():
    with pytest.raises(ValueError, match="lambda = 0.25 only"):
        dataclasses.replace(TINY, renderer="original", render_temperature=0.5)
    with pytest.raises(ValueError, match="pres_kl must be one of"):
        dataclasses.replace(TINY, pres_kl="count")
    with pytest.raises(ValueError, match="learned prior"):
        SILOT(dataclasses.replace(TINY, learned_prior=False))(VIDEOS, prior_from_frame=1)


# --- Export ---

@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    path = export_saved_model(model, tmp_path_factory.mktemp("silot") / "saved_model")
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def test_the_served_model_matches_and_takes_any_batch_length_and_size(model, served):
    for x in (videos(2, frames=3, seed=8), videos(1, frames=2, size=36, seed=9)):
        out = served(videos=tf.constant(x))
        assert set(out) == set(SERVING_KEYS)
        expected = model(x, training=False)
        expected = dict(expected, track_ids=expected["ids"], presence=expected["z_pres"])  # the names
        for key in SERVING_KEYS:
            np.testing.assert_allclose(out[key].numpy().astype(np.float64),
                                       expected[key].numpy().astype(np.float64), atol=1e-4, err_msg=key)
        assert {"boxes", "presence", "track_ids", "reconstruction"} <= set(out)
        for key in ("ids", "track_ids", "num_objects"):
            assert out[key].dtype == tf.int32, key
        assert set(np.unique(out["presence"].numpy())) <= {0.0, 1.0}


@pytest.mark.slow
def test_the_served_model_runs_where_tfobj_cannot_be_imported(model, tmp_path):
    """The SavedModel in a fresh process without tfobj (as TF Serving): two batch sizes, two lengths, two frame
    sizes; the issue's outputs (boxes, presence, track_ids, reconstruction) equal the in-process model's."""
    inputs = {"b2_t3_24x24": videos(2, frames=3, seed=8),
              "b1_t2_36x24": np.random.default_rng(9).random((1, 2, 36, 24, 3)).astype(np.float32)}
    path = export_saved_model(model, tmp_path / "saved_model")
    served = harness.served_in_fresh_process(path, inputs, tmp_path, argument="videos")
    for name, x in inputs.items():
        expected = model(x, training=False)
        for key, source in (("boxes", "boxes"), ("presence", "z_pres"), ("track_ids", "ids"),
                            ("reconstruction", "reconstruction")):
            np.testing.assert_allclose(served[f"{name}/{key}"], expected[source].numpy(), atol=1e-4,
                                       err_msg=f"{name}/{key}")
        assert served[f"{name}/track_ids"].dtype == np.int32
        assert served[f"{name}/boxes"].shape == x.shape[:2] + (K, 4)


@pytest.mark.parametrize("shape, message", [
    ((1, 2, 30, 24, 3), r"videos H must be a positive multiple of 12; got H =\] \[30\]"),
    ((0, 2, 24, 24, 3), r"videos is an empty batch"),
    ((1, 0, 24, 24, 3), r"videos have zero frames"),
])
def test_the_served_model_checks_sizes_at_run_time(served, shape, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served(videos=tf.zeros(shape))


def test_the_served_model_checks_values(served):
    x = videos(1, frames=2)
    x[0, 1, 0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        served(videos=tf.constant(x))


# --- Learning ---

@pytest.mark.slow
def test_short_fit_lowers_the_loss():
    """80 steps of Adam on 8 two-frame videos of a moving white square on black: the loss (of sampled latents, so
    noisy: averages over epochs) falls by more than 15%, most of it the reconstruction's."""
    rng = np.random.default_rng(0)
    x = np.zeros((8, 2, 24, 24, 3), np.float32)
    for v in range(8):
        top, left = rng.integers(0, 14, 2)
        for t in range(2):
            x[v, t, top + t:top + t + 8, left:left + 8] = 1.0
    model = SILOT(dataclasses.replace(TINY, training_wheels_steps=10), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3, global_clipnorm=10.0))
    history = model.fit({"videos": x}, batch_size=4, epochs=40, verbose=0, shuffle=False).history
    for key in ("loss", "nll"):
        assert np.mean(history[key][-4:]) < 0.85 * np.mean(history[key][:3]), (key, history[key])
