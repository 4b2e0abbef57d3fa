"""PaddedConvBackbone: SPAIR's convolutional encoder with right/bottom-only padding (supplement D.2)."""
from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfobj")
class PaddedConvBackbone(keras.layers.Layer):
    """Strided conv stack whose strided layers pad only on the right and bottom.

    With layers (kernel 4, stride 2), (4, 2), (4, 3) and then 1x1 convs, each strided layer pads
    `kernel - stride` zeros at the bottom/right, so output cell (i, j) of the 12-pixel grid sees the
    image from pixel (12i, 12j) onwards: the receptive field keeps the same relation to its cell at
    every position and image size (supplement D.2: "necessary for outputting accurate object
    locations for differently sized images"). Shifting the image by one cell (12 px) shifts the grid
    by one cell, and an image of side 12n gives an n-cell grid.

    Args:
        filters: filters of every layer but the last (supplement: 128).
        output_features: filters of the last layer (supplement: 100).
        strided_layers: (kernel, stride) of the padded strided convs (supplement: (4,2),(4,2),(4,3)).
        num_pointwise: number of 1x1 convs after them (supplement: 3); the last is linear.
        **kwargs: passed to `keras.layers.Layer` (name, dtype policy).

    Call arguments:
        images: float `[B, H, W, C]`, H and W multiples of the cell size (product of strides).

    Returns:
        float `[B, H / cell, W / cell, output_features]`.
    """

    def __init__(self, filters=128, output_features=100, strided_layers=((4, 2), (4, 2), (4, 3)),
                 num_pointwise=3, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.output_features = output_features
        self.strided_layers = tuple(tuple(layer) for layer in strided_layers)
        self.num_pointwise = num_pointwise
        self.cell_size = 1
        for _, stride in self.strided_layers:
            self.cell_size *= stride
        num_layers = len(self.strided_layers) + num_pointwise
        self.convs = []
        for index in range(num_layers):
            last = index == num_layers - 1
            kernel, stride = self.strided_layers[index] if index < len(self.strided_layers) else (1, 1)
            self.convs.append(keras.layers.Conv2D(
                output_features if last else filters, kernel, strides=stride, padding="valid",
                activation=None if last else "relu", dtype=self.dtype_policy, name=f"conv2d_{index}",
            ))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for index, conv in enumerate(self.convs):
            if index < len(self.strided_layers):
                kernel, stride = self.strided_layers[index]
                pad = kernel - stride
                shape = (shape[0], None if shape[1] is None else shape[1] + pad,
                         None if shape[2] is None else shape[2] + pad, shape[3])
            conv.build(shape)
            shape = conv.compute_output_shape(shape)

    def call(self, images):
        x = images
        for index, conv in enumerate(self.convs):
            if index < len(self.strided_layers):
                kernel, stride = self.strided_layers[index]
                pad = kernel - stride
                x = tf.pad(x, [[0, 0], [0, pad], [0, pad], [0, 0]])  # right/bottom only
            x = conv(x)
        return x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        cells = [None if size is None else size // self.cell_size for size in (height, width)]
        return (batch, cells[0], cells[1], self.output_features)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, output_features=self.output_features,
                      strided_layers=self.strided_layers, num_pointwise=self.num_pointwise)
        return config
