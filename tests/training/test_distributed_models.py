"""LAVAE, TUSK and SILOT trained under `MirroredStrategy` on two logical CPU devices, each against the same run on
one device (the "one library" issue's strategies; SPAIR's are tests/training/test_distributed.py).

Each run is a process of tests/training/distributed_models_run.py: a tiny model through `fit_model` with its own
`train_step` (LAVAE: three optimizers, one per part, and the warm-up with its auxiliary VAE; TUSK: the feature
step, then the prototype updates; SILOT: Keras' step over two frames), noise removed and every optimizer SGD (whose
update, unlike Adam's, is proportional to the gradient), global batch 8, 6 steps. Keras sums the replicas'
gradients, so a replica's loss must be its batch mean divided by the number of replicas; the control run of each
model leaves it undivided and must fail the same comparison.

LAVAE's batch norm is made to use the global batch's statistics in both runs (the run script's
`SynchronizedBatchNormalization`). Keras' default normalises each replica's share of the batch, so under a strategy
LAVAE trains another function than on one device: with per-replica statistics the first step's loss differed by
52% here. That is Keras' documented behaviour, not checked here; `synchronized=True` would remove it (Keras ignores
it for the masked moments of LAVAE's sprite decoder, which the run script also synchronises).

Tolerances, from one measurement on this 2-core CPU (losses: relative, every logged metric of every step; weights:
absolute, every trainable weight after the last step; deviation: the distance to the one-device weights over the
one-device run's whole movement):

| model | measured: losses, weights, deviation | allowed | control: deviation |
| --- | --- | --- | --- |
| LAVAE | 1.6e-6, 1.6e-6, 2.8e-6 | 1e-4, 1e-4, 1e-3 | 4.0 |
| TUSK | 6.5e-8, 6.0e-8, 2.9e-7 | 1e-5, 1e-6, 1e-3 | 1.03 |
| SILOT | 6.5e-8, 6.0e-8, 4.5e-7 | 1e-5, 1e-6, 1e-3 | 1.16 |

The replicas' float32 partial sums are added in another order than one device's batch sum; LAVAE's warm-up
distance (~2e4 nats per image at the start) and its global-batch batch-norm moments (E[x²] − E[x]²) make its
round-off larger. The allowed deviation is 350× (LAVAE) to 3,400× the round-off seen and 1,000× below the controls.

What these tests found (fixed in the models): TUSK's prototype step divided its loss by the number of replicas
outside the gradient tape, so under any strategy with two or more replicas the gradient was None and training
stopped ("No gradients provided for any variable"); and each replica fitted the prototypes to its own share of the
descriptors (the deviation was then 0.086 of the movement, the prototypes 1.3e-2 away), where one device fits them
to the whole batch's: the prototype step now gathers the descriptors from every replica. LAVAE under a strategy
kept the auxiliary VAE's loss in its loss after the warm-up (one device drops it): at step 6 the logged loss was
896 instead of 699 nats, and the auxiliary VAE kept training.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.training.distributed_compare import relative_deviation, weights

SCRIPT = Path(__file__).with_name("distributed_models_run.py")
ROOT = Path(__file__).resolve().parents[2]
MODELS = ("lavae", "tusk", "silot")
# Allowed differences from the one-device run (module docstring): losses (relative), weights (absolute), deviation.
TOLERANCES = {"lavae": (1e-4, 1e-4, 1e-3), "tusk": (1e-5, 1e-6, 1e-3), "silot": (1e-5, 1e-6, 1e-3)}


def run(model, strategy, out, *extra):
    return subprocess.Popen([sys.executable, str(SCRIPT), model, strategy, str(out), *extra], cwd=ROOT,
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait(process):
    output = process.communicate(timeout=900)[0].decode(errors="replace")
    assert process.returncode == 0, output[-4000:]



def assert_same_training(actual, expected, model):
    losses, weight_tolerance, deviation = TOLERANCES[model]
    np.testing.assert_array_equal(actual["metric_names"], expected["metric_names"])
    # Every logged metric of every step; atol: terms that are round-off around 0 (TUSK's equivariance under
    # identity warps, ~1e-12).
    np.testing.assert_allclose(actual["metrics"], expected["metrics"], rtol=losses, atol=1e-6)
    for a, e in zip(weights(actual), weights(expected), strict=True):
        np.testing.assert_allclose(a, e, atol=weight_tolerance)
    assert relative_deviation(actual, expected) < deviation


@pytest.fixture(scope="module", params=MODELS)
def runs(request, tmp_path_factory):
    """One model's run on one device, its mirrored run and the mirrored control, started together."""
    model = request.param
    directory = tmp_path_factory.mktemp(model)
    processes = [run(model, "default", directory / "single.npz"), run(model, "mirrored", directory / "mirrored.npz"),
                 run(model, "mirrored", directory / "control.npz", "--unscaled-replica-loss")]
    for process in processes:
        wait(process)
    return model, {name: np.load(directory / f"{name}.npz") for name in ("single", "mirrored", "control")}


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_devices_matches_one_device(runs):
    model, result = runs
    mirrored, reference = result["mirrored"], result["single"]
    assert int(mirrored["replicas"]) == 2 and int(reference["replicas"]) == 1
    assert len(reference["losses"]) == 6 and np.all(np.isfinite(reference["metrics"]))
    assert any(np.any(last != first) for last, first in zip(weights(reference), weights(reference, "first")))
    assert_same_training(mirrored, reference, model)


@pytest.mark.slow
def test_control_an_undivided_replica_loss_fails_the_comparison(runs):
    model, result = runs
    assert relative_deviation(result["control"], result["single"]) > 0.5
    with pytest.raises(AssertionError):
        assert_same_training(result["control"], result["single"], model)
