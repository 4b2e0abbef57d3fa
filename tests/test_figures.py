"""tfobj.figures: SILOT's objects figure (supplement Figs. F1, F2) on hand-made outputs and on a tiny SILOT's."""
import sys
from pathlib import Path

import numpy as np
import pytest

from tfobj import figures

sys.path.insert(0, str(Path(__file__).resolve().parent / "models" / "silot"))
from test_silot import TINY  # noqa: E402  (the tiny SILOT of the model's tests)

V, T, K, S, SPRITE = 2, 3, 3, 24, 5
DASHED = (0, (3, 2))


def synthetic():
    """2 videos of 3 frames, K = 3 slots: video 1 discovers ids 1 and 2 in frame 1, carries both, discovers id 3 in
    frame 3 in the slot id 1 left; video 2 has no object in frame 1 and discovers id 1 in frame 2."""
    rng = np.random.default_rng(0)
    videos = rng.random((V, T, S, S, 3)).astype(np.float32)
    ids = np.zeros((V, T, K), np.int32)
    is_new = np.zeros((V, T, K), bool)
    ids[0, 0, :2], is_new[0, 0, :2] = (1, 2), True
    ids[0, 1, :2] = (1, 2)
    ids[0, 2, :2], is_new[0, 2, 0] = (3, 2), True
    ids[1, 1, 2], is_new[1, 1, 2] = 1, True
    ids[1, 2, 2] = 1
    boxes = np.tile(np.array([0.1, 0.1, 0.5, 0.4], np.float32), (V, T, K, 1)) + 0.1 * np.arange(K)[:, None]
    outputs = {"reconstruction": videos * 0.5, "boxes": boxes, "ids": ids, "is_new": is_new,
               "z_pres": (ids > 0).astype(np.float32),
               "appearance": rng.random((V, T, K, SPRITE, SPRITE, 3)).astype(np.float32),
               "alpha": np.ones((V, T, K, SPRITE, SPRITE, 1), np.float32)}
    true_tracks = [{"ids": [np.array([1, 2])] * T, "boxes": [np.array([[0.1, 0.1, 0.5, 0.4], [0.3, 0.5, 0.7, 0.9]])] * T}
                   for _ in range(V)]
    return videos, outputs, true_tracks


@pytest.fixture
def drawn(monkeypatch):
    """The figures `_save` is given, kept (as axes `[rows, frames]`) before they are written and closed."""
    kept = []
    save = figures._save

    def keep(fig, path):
        kept.append(np.array(fig.axes).reshape(-1, len(fig.axes) // (3 * V)))
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    return kept


def test_silot_objects_figure_is_written_with_identity_colours_and_styles(tmp_path, drawn):
    videos, outputs, true_tracks = synthetic()
    path = figures.plot_silot_objects(videos, outputs, tmp_path / "sub" / "objects.png", true_tracks, title="t")
    assert path == tmp_path / "sub" / "objects.png" and path.stat().st_size > 1000
    axes = drawn[0]
    assert axes.shape == (3 * V, T)
    # (a) the ground truth: white, dotted, thin, on every input frame.
    assert all(len(ax.patches) == 2 for ax in axes[0]) and axes[0, 0].patches[0].get_linewidth() < 1
    # (b) frame 1 of video 1: ids 1, 2 discovered (dashed); frame 2 carries them (solid); frame 3: id 3 new, id 2 not.
    recon = axes[1]
    styles = [[(p.get_linestyle(), p.get_edgecolor()[:3]) for p in ax.patches] for ax in recon]
    colour = figures._identity_colour
    assert styles[0] == [(DASHED, colour(1)), (DASHED, colour(2))]
    assert styles[1] == [("-", colour(1)), ("-", colour(2))]
    assert styles[2] == [("-", colour(2)), (DASHED, colour(3))]  # drawn in the order of the ids, not of the slots
    assert len(axes[4, 0].patches) == 0 and [p.get_linestyle() for p in axes[4, 1].patches] == [DASHED]
    # (c) the sprites, ordered by id, each framed in its colour: video 1 frame 3 shows id 2 then id 3.
    tiles = axes[2, 2].images[0].get_array()
    np.testing.assert_allclose(tiles[0, 0], colour(2))
    sprite = outputs["appearance"][0, 2, 1] * outputs["alpha"][0, 2, 1]
    np.testing.assert_allclose(tiles[1:1 + SPRITE, 1:1 + SPRITE], sprite, rtol=1e-6)
    # The grid has room for the most objects in one frame (2): a second cell, framed in id 3's colour.
    np.testing.assert_allclose(tiles[0, -1], colour(3))
    # Without ground truth, fewer frames and videos.
    path = figures.plot_silot_objects(videos, outputs, tmp_path / "small.png", max_frames=2, max_videos=1)
    assert path.stat().st_size > 1000


def test_plot_tracks_shares_the_identity_colours(tmp_path, drawn):
    videos, outputs, true_tracks = synthetic()
    pred = [{"ids": [np.array([3])] * T, "boxes": [np.array([[0.1, 0.1, 0.5, 0.5]])] * T}] * V
    figures.plot_tracks(videos, true_tracks, pred, tmp_path / "tracks.png")
    assert drawn[0].flat[T].patches[0].get_edgecolor()[:3] == figures._identity_colour(3)  # video 1, tracks, frame 1


def _without(outputs, key):
    return {k: v for k, v in outputs.items() if k != key}


@pytest.mark.parametrize("change, message", [
    (lambda v, o, t: (v, _without(o, "alpha"), t), r"outputs lacks \['alpha'\]; expected the dict of SILOT"),
    (lambda v, o, t: (v, [o], t), "outputs must be the dict"),
    (lambda v, o, t: (v[0], o, t), r"videos must be \[V, T, H, W, 3\] \(rank 5\)"),
    (lambda v, o, t: (v[:1], o, t), r"outputs\['reconstruction'\] has \[V, T\] = \[2, 3\], but videos has \[1, 3\]"),
    (lambda v, o, t: (v[:, :2], o, t), r"has \[V, T\] = \[2, 3\], but videos has \[2, 2\]"),
    (lambda v, o, t: (v, dict(o, ids=o["ids"][..., None]), t), r"outputs\['ids'\] must have rank 3"),
    (lambda v, o, t: (v, dict(o, z_pres=o["z_pres"][..., :2]), t), r"outputs\['z_pres'\] has 2 object slots"),
    (lambda v, o, t: (v, dict(o, boxes=o["boxes"][..., :3]), t), r"outputs\['boxes'\] must end in 4"),
    (lambda v, o, t: (v, o, t[:1]), "true_tracks must have one entry per video; got 1 for 2 videos"),
])
def test_silot_objects_figure_refuses_bad_inputs(tmp_path, change, message):
    videos, outputs, true_tracks = change(*synthetic())
    with pytest.raises(ValueError, match=message):
        figures.plot_silot_objects(videos, outputs, tmp_path / "bad.png", true_tracks)
    assert not (tmp_path / "bad.png").exists()


def test_a_tiny_silot_s_outputs_plot(tmp_path):
    import tfobj
    from tfobj.experiments.silot import figure_outputs
    from tfobj.models.silot.silot import SILOT

    videos = np.random.default_rng(2).random((2, 3, S, S, 3)).astype(np.float32)
    outputs = figure_outputs(SILOT(TINY, seed=1), videos)
    assert sorted(outputs) == sorted(figures.SILOT_FIGURE_KEYS)
    assert all(isinstance(value, np.ndarray) for value in outputs.values())
    assert outputs["appearance"].shape[:3] == (2, 3, TINY.num_objects)
    path = tfobj.plot_silot_objects(videos, outputs, tmp_path / "silot_objects.png")
    assert path.stat().st_size > 1000


def test_transfer_bands_are_clipped_to_each_metric_s_range_and_labelled(tmp_path, monkeypatch):
    """SPAIR's transfer figure: a band of ± spread around AP 0.95 stays below AP = 1, one around a count error of
    0.05 stays above 0, and the figure says what the bands are."""
    kept = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: (kept.append(fig), save(fig, path))[1])
    curves = {"SPAIR": {"ap": ([0.95, 0.99], [0.1, 0.1]), "count_abs_error": ([0.05, 0.4], [0.2, 0.2]),
                        "count_01_error": ([0.02, 0.95], [0.1, 0.1])}}
    path = figures.plot_transfer_curves([1, 5], curves, tmp_path / "transfer.png", title="transfer",
                                        spread_label="± one standard deviation over 3 repeats")
    assert path.stat().st_size > 1000
    (fig,) = kept
    assert "shaded: ± one standard deviation over 3 repeats" in fig._suptitle.get_text()
    for ax, (low, high) in zip(fig.axes, [(0.0, 1.0), (0.0, np.inf), (0.0, 1.0)]):
        (band,) = ax.collections
        y = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        assert y.min() >= low and y.max() <= high
    assert fig.axes[0].collections[0].get_paths()[0].vertices[:, 1].max() == 1.0  # 0.99 + 0.1, clipped


def test_plot_objects_draws_every_model_s_objects(tmp_path, monkeypatch):
    """The figure beside each model's predict_objects: SPAIR's boxes, LAVAE's locations on grey images, TUSK's
    keypoints (rings for the slots without a local maximum); a dict of no model's kind is refused."""
    kept = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: (kept.append(fig), save(fig, path))[1])
    grey = np.zeros((2, 16, 16, 1), np.float32)
    lavae = [{"num_objects": 2, "locations": np.array([[3, 4], [10, 12]], np.int32), "appearance": np.zeros((2, 4))},
             {"num_objects": 0, "locations": np.zeros((0, 2), np.int32), "appearance": np.zeros((0, 4))}]
    assert figures.plot_objects(grey, lavae, tmp_path / "lavae.png").stat().st_size > 1000
    first, second = kept[-1].axes[:2]
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in first.lines] == [(4, 3), (12, 10)]  # (col, row)
    assert not second.lines and first.get_title() == "found 2" and second.get_title() == "found 0"

    rgb = np.zeros((1, 16, 16, 3), np.float32)
    tusk = [{"keypoints": np.array([[1.5, 2.5], [8.0, 9.0], [0.0, 0.0]], np.float32),
             "valid": np.array([True, True, False])}]
    figures.plot_objects(rgb, tusk, tmp_path / "tusk.png", true_boxes=[np.array([[0.1, 0.1, 0.5, 0.5]])])
    (ax,) = kept[-1].axes
    assert [line.get_marker() for line in ax.lines] == ["X", "X", "o"]
    assert ax.get_title() == "true 1 / found 2" and len(ax.patches) == 1
    assert "rings: not a local maximum" in kept[-1]._suptitle.get_text()

    with pytest.raises(ValueError, match="'boxes' \\(SPAIR, ConnComp\\), 'locations' \\(LAVAE\\) or 'keypoints'"):
        figures.plot_objects(rgb, [{"ids": np.zeros(2)}], tmp_path / "x.png")


def test_identity_colours_have_no_near_twins():
    """Any two of identities 0..24 (more than a quick-mode test video's tracks) differ by at least 0.14 on some RGB
    channel; the earlier palette (tab10 + Dark2, cycled) gave identities 0 and 18 the same colour and 1 and 11 two
    near oranges."""
    colours = np.array([figures._identity_colour(i) for i in range(25)])
    gaps = np.abs(colours[:, None] - colours[None]).max(axis=-1)
    np.fill_diagonal(gaps, 1.0)
    assert gaps.min() >= 0.14, np.unravel_index(gaps.argmin(), gaps.shape)


def tusk_outputs(masks=True):
    """2 images of 16×16, K = 3 keypoints (image 2's last slot holds no local maximum), prototype ids 5, 0, 7."""
    rng = np.random.default_rng(4)
    outputs = {"keypoints": np.array([[[2.0, 3.0], [8.0, 9.0], [12.0, 4.0]]] * 2, np.float32),
               "prototype_ids": np.array([[5, 0, 7]] * 2, np.int32),
               "valid": np.array([[True, True, True], [True, True, False]]),
               "reconstruction": rng.random((2, 16, 16, 3)).astype(np.float32)}
    if masks:
        logits = rng.normal(size=(2, 3, 16, 16))
        outputs["masks"] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return rng.random((2, 16, 16, 3)).astype(np.float32), outputs


def test_tusk_keypoint_figure_labels_prototypes_and_blends_the_masks(tmp_path, monkeypatch):
    kept = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: (kept.append(fig), save(fig, path))[1])
    images, outputs = tusk_outputs()
    path = figures.plot_tusk_keypoints(images, outputs, tmp_path / "sub" / "k.png", title="t")
    assert path.stat().st_size > 1000
    axes = np.array(kept[-1].axes).reshape(3, 2)
    colours = [figures._identity_colour(k + 1) for k in range(3)]
    for image, ax in enumerate(axes[0]):
        assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines] == [(3, 2), (9, 8), (4, 12)]
        assert [text.get_text() for text in ax.texts] == ["5", "0", "7"]
        assert [tuple(text.get_color()[:3]) for text in ax.texts] == colours
    assert [line.get_marker() for line in axes[0, 1].lines] == ["X", "X", "o"]  # slot 3 of image 2: a ring
    np.testing.assert_allclose(axes[1, 0].images[0].get_array(), outputs["reconstruction"][0])
    blended = np.einsum("khw,kc->hwc", outputs["masks"][1], np.array(colours))
    np.testing.assert_allclose(axes[2, 1].images[0].get_array(), blended, rtol=1e-6)
    # Without masks (the plain decoder, MNIST): two rows.
    images, outputs = tusk_outputs(masks=False)
    figures.plot_tusk_keypoints(images, outputs, tmp_path / "plain.png", max_images=1)
    assert len(kept[-1].axes) == 2


@pytest.mark.parametrize("change, message", [
    (lambda i, o: (i, {k: v for k, v in o.items() if k != "valid"}), r"outputs lacks \['valid'\]"),
    (lambda i, o: (i[0], o), r"images must be \[N, H, W, 3\] with N >= 1; got shape \(16, 16, 3\)"),
    (lambda i, o: (i[:1], o), r"outputs\['keypoints'\] must have rank 3 and one entry per image \(1\)"),
    (lambda i, o: (i, dict(o, masks=o["masks"][:, :2])), "prototype_ids, valid \\(and masks\\) have the same K"),
    (lambda i, o: (i, [o]), "outputs must be the dict"),
    (lambda i, o: (i[..., :1], o), r"images must be \[N, H, W, 3\] with N >= 1; got shape \(2, 16, 16, 1\)"),
    (lambda i, o: (i[:0], o), r"with N >= 1; got shape \(0, 16, 16, 3\)"),
    (lambda i, o: (i, dict(o, reconstruction=o["reconstruction"][:, :8])), r"outputs\['reconstruction'\] must match "
     r"the images' size \[16, 16, 3\]"),
    (lambda i, o: (i, dict(o, masks=o["masks"][..., :8])), r"outputs\['masks'\] must match the images' size \[16, 16\]"),
])
def test_tusk_keypoint_figure_refuses_bad_inputs(tmp_path, change, message):
    images, outputs = change(*tusk_outputs())
    with pytest.raises(ValueError, match=message):
        figures.plot_tusk_keypoints(images, outputs, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_prototype_figure_shows_the_used_prototypes_with_their_counts(tmp_path, monkeypatch):
    kept = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: (kept.append(fig), save(fig, path))[1])
    bank = np.random.default_rng(5).random((4, 8, 8, 3)).astype(np.float32)
    figures.plot_prototypes(bank, tmp_path / "p.png", counts=np.array([0, 3, 0, 1]), title="t")
    shown = [ax for ax in kept[-1].axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["1 (3)", "3 (1)"]
    np.testing.assert_allclose(shown[1].images[0].get_array(), bank[3])
    assert "2 unused, not shown" in " ".join(kept[-1]._suptitle.get_text().split())
    figures.plot_prototypes(bank, tmp_path / "all.png")
    assert [ax.get_title() for ax in kept[-1].axes if ax.images] == ["0", "1", "2", "3"]
    figures.plot_prototypes(bank, tmp_path / "none.png", counts=np.zeros(4, int))
    assert len([ax for ax in kept[-1].axes if ax.images]) == 4
    assert "no slot assigned to any: all shown" in " ".join(kept[-1]._suptitle.get_text().split())  # wrapped
    for counts in (np.ones(3), np.array([1, -1, 0, 0]), np.array([1.5, 0, 0, 0]), np.array([np.nan, 0, 0, 0])):
        with pytest.raises(ValueError, match=r"counts must be \[M\] = \[4\] non-negative integers"):
            figures.plot_prototypes(bank, tmp_path / "bad.png", counts=counts)
    with pytest.raises(ValueError, match=r"prototype_images must be \[M, H, W, 3\]"):
        figures.plot_prototypes(bank[0], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
