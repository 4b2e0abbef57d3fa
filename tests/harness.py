"""The shared test harness every tfobj model and layer goes through (after keras-hub's `run_layer_test` /
`run_model_saving_test`, TF-only).

Each check compares against an independent reference: the rebuilt object's config and outputs against the
original's, a fresh process's reloaded model against the in-process one, the compiled call against the eager
one, the declared output contract against the actual tensors. A model's test file calls them on a tiny config:

    check_config_round_trip(Model, kwargs, inputs)    get_config -> from_config -> same config, same outputs
    check_eager_matches_tf_function(model, inputs)    eager and tf.function calls agree
    check_output_contract(model, inputs, contract)    keys, shapes, dtypes of the outputs
    check_fit_step(model, inputs)                      one fit step: finite losses, a gradient for every weight
    check_keras_file_in_fresh_process(model, inputs, tmp_path)   .keras save, load in a new Python process
    served_in_fresh_process(model_dir, inputs, tmp_path)  a SavedModel's serving_default run in a new Python
                                                       process that cannot import tfobj (as TF Serving)
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]


def _numpy(outputs) -> dict:
    if isinstance(outputs, dict):
        return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}
    return {"output": keras.ops.convert_to_numpy(outputs)}


def assert_outputs_close(actual, expected, atol=1e-5, rtol=1e-5, what=""):
    actual, expected = _numpy(actual), _numpy(expected)
    assert set(actual) == set(expected), f"{what}: keys {sorted(actual)} != {sorted(expected)}"
    for key in expected:
        np.testing.assert_allclose(np.asarray(actual[key], np.float64), np.asarray(expected[key], np.float64),
                                   atol=atol, rtol=rtol, err_msg=f"{what}: {key}")


def check_config_round_trip(cls, init_kwargs: dict, inputs, call_kwargs=None):
    """`cls(**init_kwargs)`: its config holds every init argument (as given) and the parent's name, trainable and
    dtype policy; `from_config(get_config())` gives the same config and, with the same weights, the same outputs."""
    call_kwargs = call_kwargs or {}
    obj = cls(**init_kwargs)
    outputs = obj(inputs, **call_kwargs)
    config = obj.get_config()
    for key in ("name", "trainable", "dtype"):
        assert key in config, f"{cls.__name__}.get_config() lacks the parent's {key!r}"
    serialised = keras.saving.serialize_keras_object(obj)
    for key, value in init_kwargs.items():
        if key == "dtype":
            assert keras.DTypePolicy(value).name == obj.dtype_policy.name
            continue
        assert key in config, f"{cls.__name__}.get_config() lacks init argument {key!r}"
        assert _plain(config[key]) == _plain(value), f"{cls.__name__}: config[{key!r}] = {config[key]!r} != {value!r}"
    clone = cls.from_config(config)
    clone(inputs, **call_kwargs)
    assert json.dumps(keras.saving.serialize_keras_object(clone), sort_keys=True, default=str) == \
        json.dumps(serialised, sort_keys=True, default=str)
    clone.set_weights(obj.get_weights())
    assert_outputs_close(clone(inputs, **call_kwargs), outputs, what=f"{cls.__name__} from_config")
    assert clone.dtype_policy.name == obj.dtype_policy.name
    return clone


def _plain(value):
    """Config values as JSON would hold them (tuples as lists; dataclass configs as dicts)."""
    import dataclasses

    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def check_eager_matches_tf_function(model, inputs, atol=1e-5, **call_kwargs):
    eager = model(inputs, **call_kwargs)
    compiled = tf.function(lambda x: model(x, **call_kwargs))(inputs)
    assert_outputs_close(compiled, eager, atol=atol, what="tf.function vs eager")


def check_output_contract(model, inputs, contract: dict, **call_kwargs):
    """`contract`: {key: (shape, dtype)}; every listed key is in the outputs with that shape and dtype."""
    outputs = model(inputs, **call_kwargs)
    for key, (shape, dtype) in contract.items():
        assert key in outputs, f"output {key!r} missing; outputs are {sorted(outputs)}"
        assert tuple(outputs[key].shape) == tuple(shape), f"{key}: shape {tuple(outputs[key].shape)} != {shape}"
        assert keras.backend.standardize_dtype(outputs[key].dtype) == dtype, f"{key}: dtype {outputs[key].dtype}"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(outputs[key]).astype(np.float64))), key


def check_fit_step(model, inputs, loss_keys=("loss",)):
    """One `fit` step logs finite values of `loss_keys`, and the model's loss has a gradient (not None, finite)
    for every trainable weight."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(inputs, batch_size=len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs),
                        epochs=1, verbose=0, shuffle=False)
    for key in loss_keys:
        assert np.isfinite(history.history[key][0]), key
    with tf.GradientTape() as tape:
        outputs = model(inputs, training=True)
        loss = model.compute_loss(inputs, None, outputs)
    gradients = tape.gradient(loss, model.trainable_weights)
    missing = [w.path for w, g in zip(model.trainable_weights, gradients) if g is None]
    assert not missing, f"no gradient for {missing}"
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients)


_LOAD_IN_FRESH_PROCESS = """
import sys
import numpy as np
import keras
import tfobj  # registers tfobj's layers and models with Keras
model = keras.models.load_model(sys.argv[1])
inputs = dict(np.load(sys.argv[2]))
outputs = model(inputs if len(inputs) > 1 else inputs["input"], training=False)
outputs = outputs if isinstance(outputs, dict) else {"output": outputs}
np.savez(sys.argv[3], __policy__=np.array(model.dtype_policy.name), __class__=np.array(type(model).__name__),
         **{key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()})
"""


def check_keras_file_in_fresh_process(model, inputs, tmp_path, atol=1e-5):
    """`model.save("m.keras")`, then `keras.models.load_model` in a new Python process (after `import tfobj`)
    gives the same class, dtype policy and inference outputs as the in-process model."""
    path = Path(tmp_path) / "model.keras"
    model.save(path)
    arrays = inputs if isinstance(inputs, dict) else {"input": inputs}
    np.savez(Path(tmp_path) / "inputs.npz", **arrays)
    script = Path(tmp_path) / "load.py"
    script.write_text(_LOAD_IN_FRESH_PROCESS)
    subprocess.run([sys.executable, str(script), str(path), str(Path(tmp_path) / "inputs.npz"),
                    str(Path(tmp_path) / "outputs.npz")], check=True, cwd=ROOT)
    loaded = dict(np.load(Path(tmp_path) / "outputs.npz"))
    assert str(loaded.pop("__class__")) == type(model).__name__
    assert str(loaded.pop("__policy__")) == model.dtype_policy.name
    assert_outputs_close(loaded, model(inputs, training=False), atol=atol, what="reloaded .keras model")


_SERVE_WITHOUT_TFOBJ = """
import sys
sys.modules["tfobj"] = None  # this process must not be able to import tfobj
try:
    import tfobj  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("tfobj is importable")
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
inputs = np.load(sys.argv[2])
outputs = {}
for name in inputs.files:
    for key, value in serve(**{sys.argv[4]: tf.constant(inputs[name])}).items():
        outputs[f"{name}/{key}"] = value.numpy()
np.savez(sys.argv[3], **outputs)
"""


def served_in_fresh_process(model_dir, inputs: dict, tmp_path, argument: str = "images") -> dict:
    """Runs the SavedModel at `model_dir`'s `serving_default` on each array of `inputs` (`{name: array}`, passed
    as the signature's `argument`) in a new Python process in which `import tfobj` fails, as a server sees it.

    Returns:
        `{f"{name}/{output key}": numpy array}`.
    """
    tmp_path = Path(tmp_path)
    np.savez(tmp_path / "serve_inputs.npz", **inputs)
    script = tmp_path / "serve.py"
    script.write_text(_SERVE_WITHOUT_TFOBJ)
    subprocess.run([sys.executable, str(script), str(model_dir), str(tmp_path / "serve_inputs.npz"),
                    str(tmp_path / "serve_outputs.npz"), argument], check=True, cwd=tmp_path)
    return dict(np.load(tmp_path / "serve_outputs.npz"))
