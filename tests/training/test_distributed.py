"""Training under tf.distribute on CPU: MirroredStrategy on two logical devices and MultiWorkerMirroredStrategy
with two local worker processes on loopback, each against the same run on one device.

Each run is a process of tests/training/distributed_run.py: a tiny noise-free SPAIR through `fit_model`, SGD
(whose update, unlike Adam's, is proportional to the gradient), global batch 8, 6 steps, evaluation every 2.
Keras sums the replicas' gradients, so a replica's loss must be its batch mean divided by the number of
replicas; the control run leaves it undivided and must fail the same comparison.

Tolerances, from one measurement on this 2-core CPU: the replicas' float32 partial sums are added in another
order than one device's batch sum, which moved the trained weights by at most 4e-9 and the losses by 8e-8
(relative); the control moved them by 1.2e-2 and 8e-3, its deviation from the one-device weights being 1.15
times the whole training movement. The tests allow 1e-6 (weights), 1e-5 (losses) and a deviation below 1e-3
of the movement: 250× the round-off seen, 1,000× below the control.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.training.distributed_compare import relative_deviation, weights

SCRIPT = Path(__file__).with_name("distributed_run.py")
ROOT = Path(__file__).resolve().parents[2]


def run(strategy, out, *extra, env=None, check=True):
    return subprocess.Popen([sys.executable, str(SCRIPT), strategy, str(out), *map(str, extra)], cwd=ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait(process, expected=0):
    output = process.communicate(timeout=600)[0].decode(errors="replace")
    assert process.returncode == expected, output[-4000:]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def two_workers(outs, run_dir, *extra, expected=0):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = [run("multi_worker", out, "--run-dir", run_dir, *extra,
                     env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
                 for i, out in enumerate(outs)]
    for process in processes:
        wait(process, expected)



def assert_same_training(actual, expected):
    np.testing.assert_allclose(actual["losses"], expected["losses"], rtol=1e-5)
    for a, e in zip(weights(actual), weights(expected), strict=True):
        np.testing.assert_allclose(a, e, atol=1e-6)
    assert relative_deviation(actual, expected) < 1e-3


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The reference run on one device, the mirrored run and its control, started together."""
    directory = tmp_path_factory.mktemp("single")
    processes = [run("default", directory / "single.npz"), run("mirrored", directory / "mirrored.npz"),
                 run("mirrored", directory / "control.npz", "--unscaled-replica-loss")]
    for process in processes:
        wait(process)
    return {name: np.load(directory / f"{name}.npz") for name in ("single", "mirrored", "control")}


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_devices_matches_one_device(single):
    mirrored, reference = single["mirrored"], single["single"]
    assert int(mirrored["replicas"]) == 2 and int(reference["replicas"]) == 1
    np.testing.assert_array_equal(mirrored["steps"], [2, 4, 6])
    assert_same_training(mirrored, reference)


@pytest.mark.slow
def test_control_an_undivided_replica_loss_fails_the_comparison(single):
    assert relative_deviation(single["control"], single["single"]) > 0.5
    with pytest.raises(AssertionError):
        assert_same_training(single["control"], single["single"])


@pytest.mark.slow
def test_multi_worker_strategy_with_two_local_workers(single, tmp_path):
    """Two workers on loopback: identical weights on both, the one-device run's losses and weights; the chief
    writes the run directory (history, best weights, SavedModel), the other worker only its own backup."""
    outs = [tmp_path / "worker0.npz", tmp_path / "worker1.npz"]
    two_workers(outs, tmp_path / "run")
    workers = [np.load(out) for out in outs]
    assert int(workers[0]["replicas"]) == 2
    for a, b in zip(weights(workers[0]), weights(workers[1]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same_training(workers[0], single["single"])
    assert int(workers[0]["best_step"]) == int(single["single"]["best_step"])
    run_dir = tmp_path / "run"
    assert (run_dir / "saved_model" / "saved_model.pb").exists() and (run_dir / "best.weights.h5").exists()
    assert [entry["step"] for entry in json.loads((run_dir / "history.json").read_text())] == [2, 4, 6]
    assert not (run_dir / "backup").exists()  # finished: BackupAndRestore removed it
    assert sorted(p.name for p in (run_dir / "workers").iterdir()) == ["1"]
    assert not (run_dir / "workers" / "1" / "saved_model").exists()


@pytest.mark.slow
def test_multi_worker_run_killed_and_resumed(single, tmp_path):
    """Both workers killed at step 4 (their backups are from step 4, the end of period 2) and started again with
    the same command: the run resumes at step 4 and ends as the uninterrupted one-device run."""
    outs = [tmp_path / "worker0.npz", tmp_path / "worker1.npz"]
    two_workers(outs, tmp_path / "run", "--kill-at", 4, expected=3)
    assert (tmp_path / "run" / "backup").exists() and (tmp_path / "run" / "workers" / "1" / "backup").exists()
    two_workers(outs, tmp_path / "run")
    resumed = np.load(outs[0])
    np.testing.assert_array_equal(resumed["steps"], [2, 4, 6])
    assert_same_training(resumed, single["single"])
