"""reproduce/silot_tracking.py: the aggregation and the tables on hand-made numbers, the AP-over-frames inputs, the
config in both modes, and a tiny run end to end (slow); also SILOT.predict_objects' prior_from_frame (slow)."""
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tfobj.config import load_config
from tfobj.models.baselines.conncomp import Track
from tfobj.models.silot.silot_config import SILOTConfig

sys.path.insert(0, str(Path(__file__).resolve().parent / "models" / "silot"))
from test_silot import TINY  # noqa: E402  (the tiny SILOT of the model's tests)


def _toml(value) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value)  # JSON scalars and lists are TOML values


# The tiny SILOT as --set overrides (every field where it differs from the paper's SILOTConfig), trained 4 steps on
# 2-frame clips (the curriculum stops at 2 frames) and tested on 8 frames; the graph frame loop, whose trace does not
# grow with the frames (and takes the prior's tensor-valued switch, where the predict_objects test below takes the
# Python one).
TINY_MODEL = dataclasses.replace(TINY, curriculum_steps=2, curriculum_max_frames=2, training_wheels_steps=1,
                                 patience=2, max_stops=1, frame_loop="while")
TINY_SETS = [f"mnist.silot.model.{key}={_toml(value)}" for key, value in dataclasses.asdict(TINY_MODEL).items()
             if value != getattr(SILOTConfig(), key)] + [
    "mnist.counts=[1, 2]", "mnist.training_counts=[[1, 2]]", "mnist.repeats=1",
    "mnist.silot.data.scene.image_size=[24, 24]", "mnist.silot.data.scene.max_digits=2",  # 6 digits do not fit
    "mnist.silot.data.num_train_videos=8",
    "mnist.silot.data.num_val_videos=4", "mnist.silot.data.num_test_videos=4", "mnist.silot.train.steps=4",
    "mnist.silot.train.eval_every=2", "mnist.silot.train.batch_size=4", "mnist.silot.train.learning_rate=1e-3",
    "mnist.conncomp.data.scene.image_size=[24, 24]", "mnist.conncomp.data.scene.max_digits=2",
    "mnist.conncomp.data.num_train_videos=4",
    "mnist.conncomp.train.thresholds=[0.1, 1.0]"]


@pytest.fixture(scope="module")
def tracking(load_script):
    return load_script("silot_tracking")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))


def test_tables_aggregate_repeats_by_the_student_t_interval(tracking):
    """Hand-made scores of two repeats: each cell is the mean ± t_{0.975, 1}·sem; rows n, columns system × metric."""
    systems = {"silot_1-6": {"mota": {1: [0.5, 0.7], 3: [0.4, 0.4]}, "ap": {1: [0.9, 0.8], 3: [0.6, 0.7]},
                             "count_abs_error": {1: [0.1, 0.3], 3: [1.0, 2.0]}},
               "conncomp": {"mota": {1: [0.9, 0.9], 3: [-0.2, 0.2]}, "ap": {1: [1.0, 1.0], 3: [0.5, 0.5]},
                            "count_abs_error": {1: [0.0, 0.0], 3: [0.5, 0.7]}}}
    result = {"counts": [1, 3], "repeats": 2, "systems": systems}
    table = tracking.markdown_table(result, tracking.METRICS, "# digits").splitlines()
    assert table[0] == ("| # digits | SILOT (1–6) MOTA | SILOT (1–6) AP | SILOT (1–6) count abs. error | ConnComp MOTA | "
                        "ConnComp AP | ConnComp count abs. error |")
    assert table[1] == "|---|---|---|---|---|---|---|"

    def half_width(values):  # scipy's interval, independently of mean_and_ci
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        return (high - low) / 2

    assert half_width([0.5, 0.7]) == pytest.approx(12.706205 * 0.1, rel=1e-6)  # t_{0.975, 1} · std / √2
    expected = [f"{np.mean(v):.3f} ± {half_width(v) if np.std(v) else 0.0:.3f}"
                for v in ([0.4, 0.4], [0.6, 0.7], [1.0, 2.0], [-0.2, 0.2], [0.5, 0.5], [0.5, 0.7])]
    assert table[3] == "| 3 | " + " | ".join(expected) + " |"
    assert table[2].startswith(f"| 1 | 0.600 ± {half_width([0.5, 0.7]):.3f} | 0.850 ± ")
    assert len(table) == 4
    # The prior part's legend names the frame the prior starts at; one repeat has no spread.
    assert tracking.label("silot_1-12/prior", 3) == "SILOT (1–12), prior from frame 3"
    assert tracking.cell([0.25]) == "0.250"  # one repeat: no interval


def test_ap_inputs_put_each_frame_s_objects_first_and_score_conncomp_1(tracking):
    """AP over frames: every frame becomes one image; padded truth rows move behind the frame's objects."""
    boxes = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)  # [N=2, T=2, K=3, 4]
    ids = np.array([[[1, 2, 0], [0, 2, 0]], [[0, 0, 0], [1, 0, 3]]])  # [N, T, K]
    true_boxes, counts = tracking.frame_truth({"track_ids": ids, "boxes": boxes})
    assert counts.tolist() == [2, 1, 0, 2]
    np.testing.assert_array_equal(true_boxes[1, 0], boxes[0, 1, 1])  # the one object of video 0, frame 1 first
    np.testing.assert_array_equal(true_boxes[3, :2], boxes[1, 1, [0, 2]])
    found = Track(ids=[np.array([1]), np.array([], np.int64)], boxes=[np.ones((1, 4)), np.zeros((0, 4))])
    detections = tracking.frame_detections([found, found])
    assert len(detections) == 4 and detections[0]["scores"].tolist() == [1.0] and detections[1]["scores"].shape == (0,)
    # Perfect tracks from frame 1 on: MOTA = AP = 1 and no count error on frames 1.., not on frame 0.
    gt = np.array([[[0.1, 0.1, 0.4, 0.4]], [[0.2, 0.2, 0.5, 0.5]]], np.float32)[None]  # [1, T=2, K=1, 4]
    videos = {"track_ids": np.array([[[1], [1]]]), "boxes": gt}
    late = Track(ids=[np.array([], np.int64), np.array([1])], boxes=[np.zeros((0, 4)), gt[0, 1]])
    assert tracking.evaluate([late], videos, first_frame=1) == pytest.approx({"mota": 1.0, "ap": 1.0,
                                                                              "count_abs_error": 0.0})
    assert tracking.evaluate([late], videos)["count_abs_error"] == 0.5


def test_config_loads_in_both_modes_and_refuses_bad_keys(tracking, load_script, tmp_path):
    quick = load_config(tracking.TrackingConfig, tracking.DEFAULT_CONFIG, mode="quick")
    full = load_config(tracking.TrackingConfig, tracking.DEFAULT_CONFIG, mode="full")
    # Full mode: Fig. 5's protocol (D.1) and the original's repeats; G.1 from frame 3 with the learned prior.
    assert full.mnist.counts == tuple(range(1, 13)) and full.mnist.training_counts == ((1, 6), (1, 12))
    assert full.mnist.repeats == 6 and full.shapes.repeats == 4 and full.mnist.silot.data.num_test_videos == 1000
    assert full.mnist.silot.data.num_train_videos == 60000 and full.mnist.silot.model.learned_prior
    assert full.mnist.prior_from_frame == 3 and full.shapes.silot.data.scene.image_size == (96, 96)
    assert max(full.shapes.counts) == 35 and full.shapes.silot.model.num_objects >= 35
    # Quick mode: table 1's silot row (checked key by key) but for K, the learned prior and the test videos.
    table1_script = load_script("table1")
    table1 = load_config(table1_script.Table1Config, tracking.ROOT / "configs" / "table1.toml", mode="quick").silot
    assert quick.mnist.silot.model == dataclasses.replace(table1.model, num_objects=12, learned_prior=True)
    assert quick.mnist.silot.train == table1.train
    assert quick.mnist.repeats == 1 and quick.mnist.counts == (1, 3, 6, 9, 12)
    assert quick.mnist.silot.data.num_test_videos <= 300
    with pytest.raises(ValueError, match="unknown config key"):
        tracking.main(["--out", str(tmp_path), "--check", "--set", "mnist.silot.train.stpes=3"])
    with pytest.raises(ValueError, match="prior_from_frame must be in 1..7"):
        tracking.main(["--out", str(tmp_path), "--check", "--set", "mnist.prior_from_frame=8"])
    with pytest.raises(ValueError, match="must be the kind"):
        tracking.main(["--out", str(tmp_path), "--check", "--set", "mnist.conncomp.data.scene.image_size=[96, 96]"])
    with pytest.raises(SystemExit):
        tracking.main(["--out", str(tmp_path), "--check", "--mode", "full"])


def test_quick_mode_runs_mnist_and_prior_but_shapes_only_when_asked(tracking):
    assert tracking.selected_parts("quick", list(tracking.PARTS), []) == ["mnist", "prior"]
    assert tracking.selected_parts("full", list(tracking.PARTS), []) == ["mnist", "prior", "shapes"]
    assert tracking.selected_parts("quick", ["shapes"], ["--only", "shapes"]) == ["shapes"]


@pytest.mark.slow
def test_tiny_run_writes_tables_json_and_figures(tracking, tmp_path, capsys):
    out = tmp_path / "out"
    record = tracking.main(["--out", str(out)] + [arg for item in TINY_SETS for arg in ("--set", item)])
    saved = json.loads((out / "results.json").read_text())
    assert saved["parts"] == ["mnist", "prior"] and set(saved["results"]) == {"mnist", "prior"}
    mnist, prior = saved["results"]["mnist"], saved["results"]["prior"]
    assert set(mnist["systems"]) == {"silot_1-2", "conncomp"}
    for system in mnist["systems"].values():
        assert set(system) == {"mota", "ap", "count_abs_error"}
        assert all(set(per_n) == {"1", "2"} and all(len(v) == 1 and np.isfinite(v[0]) for v in per_n.values())
                   for per_n in system.values())
    assert mnist["frames"] == list(range(8)) and prior["frames"] == [3, 4, 5, 6, 7]
    assert set(prior["systems"]) == {"silot_1-2/prior", "silot_1-2/posterior"}
    assert all(set(system) == {"mota", "ap"} and set(system["ap"]) == {"1", "2"} for system in prior["systems"].values())
    assert 0.0 <= mnist["systems"]["silot_1-2"]["ap"]["1"][0] <= 1.0
    assert mnist["runs"]["silot_1-2"][0]["steps"] == 4 and mnist["runs"]["conncomp"][0]["threshold"] in (0.1, 1.0)
    assert record["results"] == saved["results"]
    table = (out / "silot_tracking.md").read_text()
    assert "| 2 | {:.3f} |".format(mnist["systems"]["silot_1-2"]["mota"]["2"][0]) in table
    assert "figures only" in table and "repeats: 6 -> 1" in table and "frames 3–7" in table
    assert (out / "silot_tracking.png").stat().st_size > 1000
    assert (out / "silot_tracking_prior.png").stat().st_size > 1000
    assert not (out / "silot_tracking_shapes.png").exists()


@pytest.mark.slow
def test_predict_objects_passes_prior_from_frame_to_the_model():
    """The tracks of predict_objects(prior_from_frame=t) are those of model(videos, prior_from_frame=t); without it,
    those of the plain call (the behaviour before the argument)."""
    from tfobj.models.silot.silot import SILOT

    model = SILOT(TINY, seed=0)
    videos = np.random.default_rng(0).random((2, 5, 24, 24, 3)).astype(np.float32)
    for first in (None, 3):
        outputs = model(videos, training=False, prior_from_frame=first)
        tracks = model.predict_objects(videos, prior_from_frame=first)
        for v, track in enumerate(tracks):
            for t in range(5):
                present = np.asarray(outputs["z_pres"][v, t]) > 0.5
                np.testing.assert_allclose(track.boxes[t], np.asarray(outputs["boxes"][v, t])[present], atol=1e-5)
                np.testing.assert_array_equal(track.ids[t], np.asarray(outputs["ids"][v, t])[present])
    plain, prior = model(videos, training=False), model(videos, training=False, prior_from_frame=3)
    assert not np.allclose(plain["boxes"][:, 3:], prior["boxes"][:, 3:])  # the prior moves the objects otherwise
    np.testing.assert_allclose(plain["boxes"][:, :3], prior["boxes"][:, :3], atol=1e-6)  # frames 0-2 unchanged
