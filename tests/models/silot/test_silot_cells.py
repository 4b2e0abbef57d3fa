"""SILOT's discovery module and propagation cell: units and shapes, the supplement's update equations (A.1) against
numpy, absent objects' lack of influence, training wheels (E.1), the learned prior's blindness to the frame, and
the harness (config round trip, eager vs tf.function, a gradient for every weight)."""
import numpy as np
import pytest
import tensorflow as tf

import harness
from tfobj.models.silot.silot_cells import DiscoveryModule, PropagationCell

A, S, K, B = 4, 6, 3, 2
H, W = 24, 36  # a 2 x 3 grid of 12-pixel cells
N = (H // 12) * (W // 12)

DISCOVERY = dict(num_what=A, backbone_filters=8, backbone_features=8, spatial_hidden=(8,), attention_features=5,
                 fuse_hidden=(8,), cell_hidden=(8,), passthrough_features=3, glimpse_hidden=(8,), what_hidden=(8,),
                 hidden_size=S)
PROPAGATION = dict(num_what=A, hidden_size=S, attention_features=5, object_hidden=(7,), spatial_hidden=(7,),
                   glimpse_where_hidden=(7,), first_glimpse_hidden=(7,), where_hidden=(7,),
                   second_glimpse_hidden=(7,), what_hidden=(7,), depth_hidden=(7,), pres_hidden=(7,),
                   object_size=(5, 5))


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def make_objects(rng, count=K, pres=None):
    objects = dict(position=rng.uniform(0.1, 0.6, (B, count, 2)), size=rng.uniform(0.1, 0.5, (B, count, 2)),
                   what=rng.normal(size=(B, count, A)), depth=rng.uniform(0.1, 0.9, (B, count, 1)),
                   pres=rng.uniform(0.3, 1.0, (B, count, 1)) if pres is None else pres,
                   hidden=rng.normal(size=(B, count, S)))
    return {key: np.asarray(value, np.float32) for key, value in objects.items()}


def make_noise(rng, count, scale=1.0):
    noise = dict(where=rng.normal(size=(B, count, 4)) * scale, what=rng.normal(size=(B, count, A)),
                 depth=rng.normal(size=(B, count, 1)) * scale, pres=rng.logistic(size=(B, count, 1)))
    return {key: np.asarray(value, np.float32) for key, value in noise.items()}


def controls(hard=False, temperature=1.0, wheels=0.0):
    return dict(hard_pres=tf.constant(hard), temperature=tf.constant(temperature), wheels=tf.constant(wheels))


def images(seed=0):
    return np.random.default_rng(seed).random((B, H, W, 3)).astype(np.float32)


# --- Discovery ---

def test_backbone_has_e1_architecture_and_12_pixel_cells():
    layer = DiscoveryModule()
    convs = layer.backbone.convs
    assert [c.kernel_size for c in convs] == [(4, 4)] * 3 + [(1, 1)] * 3
    assert [c.strides for c in convs] == [(3, 3), (2, 2), (2, 2)] + [(1, 1)] * 3
    assert [c.filters for c in convs] == [128] * 6
    assert [c.activation.__name__ for c in convs] == ["relu"] * 5 + ["linear"]
    assert layer.backbone.compute_output_shape((None, 48, 48, 3)) == (None, 4, 4, 128)  # Table 1: c = 12 px
    with pytest.raises(ValueError, match="cell_size must be 12"):
        DiscoveryModule(cell_size=8)


def test_discovered_objects_units():
    rng = np.random.default_rng(0)
    layer = DiscoveryModule(**DISCOVERY)
    noise = make_noise(rng, N, scale=3.0)
    out = layer(images(), make_objects(rng), noise, **controls(temperature=0.5))
    out = {key: value.numpy().astype(np.float64) for key, value in out.items()}
    for key, size in dict(position=2, size=2, what=A, depth=1, pres=1, hidden=S, boxes=4).items():
        assert out[key].shape == (B, N, size), key
    unit = sigmoid(np.clip(out["where_logits"], -10, 10))
    cell_yx = -0.5 + 2.0 * unit[..., :2]  # (b_min, b_max) = (-0.5, 1.5) cells
    rows, cols = np.divmod(np.arange(N), W // 12)
    expected_position = (np.stack([rows, cols], -1)[None] + cell_yx) * 12 / 48  # anchor units
    np.testing.assert_allclose(out["position"], expected_position, atol=1e-5)
    np.testing.assert_allclose(out["size"], unit[..., 2:], atol=1e-6)
    assert np.all((out["size"] > 0) & (out["size"] < 1))
    np.testing.assert_allclose(out["depth"], sigmoid(out["z_depth"]), atol=1e-6)
    np.testing.assert_allclose(out["where_logits"], out["where_mean"] + out["where_std"] * noise["where"], atol=1e-5)
    np.testing.assert_allclose(out["pres"], sigmoid((out["pres_logits"] + noise["pres"]) / 0.5), atol=1e-5)
    centre = out["position"] * 48 / np.array([H, W])
    half = out["size"] * 48 / np.array([H, W]) / 2
    np.testing.assert_allclose(out["boxes"], np.concatenate([centre - half, centre + half], -1), atol=1e-5)
    np.testing.assert_allclose(out["hidden"], np.broadcast_to(layer.initial_hidden.numpy(), (B, N, S)))


def test_discovery_ignores_absent_and_far_propagated_objects():
    rng = np.random.default_rng(1)
    layer = DiscoveryModule(**DISCOVERY)
    noise, ctl = make_noise(rng, N), controls()
    objects = make_objects(rng, pres=np.array([[[1.0], [0.0], [0.7]]] * B, np.float32))
    base = layer(images(), objects, noise, **ctl)
    moved = dict(objects)
    moved["position"] = objects["position"].copy()
    moved["position"][:, 1] += 0.2  # the absent object moves and changes
    moved["what"] = objects["what"].copy()
    moved["what"][:, 1] += 1.0
    harness.assert_outputs_close(layer(images(), moved, noise, **ctl), base, atol=1e-6, what="absent moved")
    present = dict(objects)
    present["what"] = objects["what"].copy()
    present["what"][:, 0] += 1.0  # a present object changes: the discovery sees it
    assert not np.allclose(layer(images(), present, noise, **ctl)["what_mean"].numpy(), base["what_mean"].numpy())
    # No propagated objects at all (the first frame) = only absent ones.
    none = {key: value[:, :0] for key, value in objects.items()}
    absent = dict(objects, pres=np.zeros_like(objects["pres"]))
    harness.assert_outputs_close(layer(images(), none, noise, **ctl), layer(images(), absent, noise, **ctl),
                                 atol=1e-6, what="no objects vs absent objects")


# --- Propagation ---

@pytest.mark.parametrize("what_update", ["gated", "additive"])
def test_propagation_updates_are_a1(what_update):
    rng = np.random.default_rng(2)
    layer = PropagationCell(**PROPAGATION, what_update=what_update)
    objects, noise = make_objects(rng), make_noise(rng, K, scale=3.0)
    out = {key: value.numpy().astype(np.float64)
           for key, value in layer(images(), objects, noise, **controls(temperature=0.5)).items()}
    z = out["where_mean"] + out["where_std"] * noise["where"]
    np.testing.assert_allclose(out["z_where"], z, atol=1e-5)
    # f^{y/x} = o + tanh(z): less than one anchor per frame; f^{h/w} = sigm(sigm⁻¹(o) + z).
    np.testing.assert_allclose(out["position"], objects["position"] + np.tanh(z[..., :2]), atol=1e-5)
    assert np.all(np.abs(out["position"] - objects["position"]) < 1)
    np.testing.assert_allclose(out["size"], sigmoid(logit(objects["size"].astype(np.float64)) + z[..., 2:]), atol=1e-5)
    np.testing.assert_allclose(out["size_logit_mean"], logit(objects["size"].astype(np.float64))
                               + out["where_mean"][..., 2:], rtol=1e-5, atol=1e-5)
    z_depth = out["depth_mean"] + out["depth_std"] * noise["depth"]
    np.testing.assert_allclose(out["z_depth"], z_depth, atol=1e-5)
    np.testing.assert_allclose(out["depth"], sigmoid(logit(objects["depth"].astype(np.float64)) + z_depth), atol=1e-5)
    np.testing.assert_allclose(out["what"], objects["what"] + out["what_mean"] + out["what_std"] * noise["what"],
                               atol=1e-5)
    # z_pres: the old presence times a Concrete sample sigm((logit + L) / T).
    factor = sigmoid((out["pres_logits"] + noise["pres"]) / 0.5)
    np.testing.assert_allclose(out["pres"], objects["pres"] * factor, atol=1e-5)
    centre, half = out["position"] * 48 / np.array([H, W]), out["size"] * 48 / np.array([H, W]) / 2
    np.testing.assert_allclose(out["boxes"], np.concatenate([centre - half, centre + half], -1), atol=1e-5)
    assert ("what_gates" in out) == (what_update == "gated")
    hard = layer(images(), objects, noise, **controls(hard=True, temperature=0.5))
    expected = objects["pres"] * (out["pres_logits"] + noise["pres"] > 0)
    np.testing.assert_allclose(hard["pres"].numpy(), expected, atol=1e-6)


def test_propagation_hidden_state_is_a_gru_of_the_new_attributes():
    """A.1: õ^hidden = p_rnn(o^hidden, õ^where, õ^what, õ^depth, õ^pres), here a Keras GRUCell with the layer's
    weights, run on the layer's own new attributes."""
    rng = np.random.default_rng(3)
    layer = PropagationCell(**PROPAGATION)
    objects = make_objects(rng)
    out = layer(images(), objects, make_noise(rng, K), **controls())
    cell_in = tf.concat([out[key] for key in ("position", "size", "what", "depth", "pres")], -1)
    expected, _ = layer.rnn(tf.reshape(cell_in, [B * K, -1]), [tf.reshape(objects["hidden"], [B * K, S])])
    np.testing.assert_allclose(out["hidden"].numpy(), tf.reshape(expected, [B, K, S]).numpy(), atol=1e-6)


@pytest.mark.parametrize("attention", [True, False])
def test_absent_objects_do_not_influence_others(attention):
    rng = np.random.default_rng(4)
    layer = PropagationCell(**PROPAGATION, attention=attention)
    pres = np.array([[[0.9], [0.0], [0.8]]] * B, np.float32)
    objects, noise, ctl = make_objects(rng, pres=pres), make_noise(rng, K), controls()
    # Present objects close together, so that the attention term matters.
    objects["position"][:] = [[0.3, 0.3], [0.32, 0.31], [0.35, 0.3]]
    base = {key: value.numpy() for key, value in layer(images(), objects, noise, **ctl).items()}
    assert np.all(base["pres"][:, 1] == 0)  # absent stays absent
    changed = {key: value.copy() for key, value in objects.items()}
    changed["what"][:, 1] += 2.0
    changed["hidden"][:, 1] -= 1.0
    changed["position"][:, 1] += 0.01
    out = {key: value.numpy() for key, value in layer(images(), changed, noise, **ctl).items()}
    for key in ("position", "size", "what", "depth", "pres", "hidden"):
        np.testing.assert_allclose(out[key][:, [0, 2]], base[key][:, [0, 2]], atol=1e-6, err_msg=key)
    # A present neighbour does influence them, through B.2's term (and not without it).
    changed = {key: value.copy() for key, value in objects.items()}
    changed["what"][:, 2] += 2.0
    out = layer(images(), changed, noise, **ctl)["position"].numpy()
    assert np.allclose(out[:, 0], base["position"][:, 0], atol=1e-6) == (not attention)


def test_learned_prior_does_not_see_the_frame():
    rng = np.random.default_rng(5)
    objects, noise, ctl = make_objects(rng), make_noise(rng, K), controls()
    prior = PropagationCell(**PROPAGATION, posterior=False)
    harness.assert_outputs_close(prior(images(0), objects, noise, **ctl), prior(images(1), objects, noise, **ctl),
                                 what="prior on two frames")
    assert not any(name in w.path for w in prior.weights for name in ("glimpse_encoder", "glimpse_where"))
    posterior = PropagationCell(**PROPAGATION)
    first, second = posterior(images(0), objects, noise, **ctl), posterior(images(1), objects, noise, **ctl)
    assert not np.allclose(first["what_mean"].numpy(), second["what_mean"].numpy())


def test_training_wheels_stop_gradients_into_where_depth_and_pres_heads():
    """E.1: for the first 1000 steps no gradient flows through the where, depth and pres attributes."""
    rng = np.random.default_rng(6)
    layer = PropagationCell(**PROPAGATION)
    objects, noise = make_objects(rng), make_noise(rng, K)
    layer(images(), objects, noise, **controls())
    heads = [w for w in layer.trainable_weights if w.path.split("/")[1] in ("where_net", "depth_net", "pres_net")]
    assert len(heads) == 3 * 4  # three MLPs of one hidden layer: two kernels, two biases each

    def gradients(wheels):
        with tf.GradientTape() as tape:
            out = layer(images(), objects, noise, **controls(wheels=wheels))
            loss = sum(tf.reduce_sum(out[key]) for key in ("position", "size", "depth", "pres", "what", "hidden"))
        return tape.gradient(loss, heads)

    assert all(g is None or np.all(g.numpy() == 0) for g in gradients(1.0))
    assert all(g is not None and np.any(g.numpy() != 0) for g in gradients(0.0)[::2])  # kernels


# --- Harness ---

def _call_kwargs(rng, count_objects, count_noise):
    return dict(objects=make_objects(rng, count_objects), noise=make_noise(rng, count_noise), **controls())


@pytest.mark.parametrize("cls, kwargs, noise_count", [
    (DiscoveryModule, dict(DISCOVERY, attention_std=0.2, presence_weighted=False, box_bounds=(-1.0, 2.0),
                           anchor_size=(36.0, 36.0), object_size=(6, 5)), N),
    (PropagationCell, dict(PROPAGATION, attention=False, attention_std=0.2, presence_weighted=False,
                           what_update="additive", anchor_size=(40.0, 30.0)), K),
    (PropagationCell, dict(PROPAGATION, posterior=False), K),
])
def test_harness(cls, kwargs, noise_count):
    rng = np.random.default_rng(7)
    call_kwargs = _call_kwargs(rng, K, noise_count)
    harness.check_config_round_trip(cls, kwargs, images(), call_kwargs)
    layer = cls(**kwargs)
    # Graph-mode fusion reorders float32 sums: outputs of order 1 agree to ~2e-5.
    harness.check_eager_matches_tf_function(layer, images(), atol=1e-4, **call_kwargs)
    with tf.GradientTape() as tape:
        out = layer(images(), **call_kwargs)
        loss = sum(tf.reduce_sum(value) for key, value in out.items() if key not in ("pres_factor",))
    gradients = tape.gradient(loss, layer.trainable_weights)
    # SPAIRCellEncoder keeps its out-of-grid neighbour latent ("edge") without lateral context too; unused there.
    missing = [w.path for w, g in zip(layer.trainable_weights, gradients) if g is None and not w.path.endswith("edge")]
    assert not missing, f"no gradient for {missing}"
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients if g is not None)
