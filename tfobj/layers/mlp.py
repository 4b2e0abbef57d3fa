"""MLP: fully connected hidden layers with ReLU and a linear output (SILOT Table 2's FC([N, N]))."""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tfobj")
class MLP(keras.layers.Layer):
    """`len(hidden)` ReLU layers then a linear output layer.

    Args:
        hidden: units of the hidden layers, e.g. (100, 100).
        output_units: units of the linear output layer.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float `[..., D]`.

    Returns:
        float `[..., output_units]`.
    """

    def __init__(self, hidden, output_units, **kwargs):
        super().__init__(**kwargs)
        self.hidden = tuple(hidden)
        self.output_units = output_units
        self.dense_layers = [
            keras.layers.Dense(units, activation="relu", dtype=self.dtype_policy, name=f"dense_{index}")
            for index, units in enumerate(self.hidden)
        ]
        self.dense_layers.append(
            keras.layers.Dense(output_units, dtype=self.dtype_policy, name=f"dense_{len(self.hidden)}")
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = shape[:-1] + (layer.units,)

    def call(self, inputs):
        x = inputs
        for layer in self.dense_layers:
            x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.output_units,)

    def get_config(self):
        config = super().get_config()
        config.update(hidden=self.hidden, output_units=self.output_units)
        return config
