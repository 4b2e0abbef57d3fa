"""SPAIR's layers: the sequential per-cell encoder (with lateral context) and the object decoder.

Dimension letters (docs/conventions.md): B batch, H, W image, h, w grid cells, N = h·w cells in
raster order, A = size of z_what, L = size of a cell's latent vector (4 + A + 1 + 1).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfobj.layers.glimpse import extract_glimpses
from tfobj.layers.mlp import MLP

# (dy, dx) of the lateral neighbours, all processed before the current cell in raster order
# (original code: n_lookback = 1 -> the 4 cells above-left, above, above-right and left).
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1))
LOGIT_CLIP = 10.0  # original code clips every logit to ±10 before its sigmoid


def positive_std(raw):
    """std = 2·sigmoid(clip(raw, ±10)) (original code), in (0, 2)."""
    return 2.0 * tf.sigmoid(tf.clip_by_value(raw, -LOGIT_CLIP, LOGIT_CLIP))


def positive_std_inverse(std):
    """The raw value whose `positive_std` is `std` (in (0, 2)): logit(std / 2), e.g. for an initial bias."""
    p = tf.convert_to_tensor(std, tf.float32) / 2.0
    return tf.math.log(p) - tf.math.log1p(-p)


def training_wheels(x, wheels):
    """`wheels·stop_gradient(x) + (1 − wheels)·x`: value unchanged, gradient scaled by 1 − wheels."""
    return wheels * tf.stop_gradient(x) + (1.0 - wheels) * x


@keras.saving.register_keras_serializable(package="tfobj")
class SPAIRCellEncoder(keras.layers.Layer):
    """Infers every cell's z_where, z_what, z_depth and z_pres, cell by cell in raster order.

    Each cell's posterior is conditioned on the sampled latents of its already-processed neighbours
    (above-left, above, above-right, left); neighbours outside the grid are a learned edge vector.
    Per cell (original code's order): box net → z_where → glimpse → object encoder → z_what →
    depth net → z_depth → pres net → z_pres.

    Args (the `SPAIRConfig` fields of the same names):
        num_what: A, the size of z_what.
        cell_hidden: hidden units of the box, depth and pres MLPs.
        passthrough_features: features the box and depth nets pass to the next head.
        encoder_hidden: hidden units of the object encoder MLP.
        object_size: (h_obj, w_obj) of the glimpses.
        cell_size: pixels per cell.
        anchor_size: (a_h, a_w) pixels, the largest box.
        box_bounds: (b_min, b_max), the range of a box centre within its cell, in cells.
        lateral_context: condition each cell on its processed neighbours.
        what_hidden: None (SPAIR: the object encoder outputs z_what's mean and std), or the hidden units of a
            separate z_what head (SILOT's d_what, supplement Table 2; e2crawfo/auto_yolo aaai_2020
            `ConvGridObjectLayer`): the object encoder then outputs A glimpse features, and the head maps
            [cell features, box passthrough, glimpse features, latent box] to z_what's mean and std and the
            passthrough features the depth net receives.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        images: float `[B, H, W, C]`.
        features: float `[B, h, w, F]` from the backbone.
        noise: dict of standard noise, "where" `[B, N, 4]`, "what" `[B, N, A]`, "depth" `[B, N, 1]`
            (Normal(0, 1); zeros for the posterior mode) and "pres" `[B, N, 1]` (Logistic(0, 1)
            noise for the Concrete sample).
        hard_pres: bool tensor; True: z_pres = 1[pre-sigmoid sample > 0], else the relaxed sigmoid.
        temperature: Concrete temperature (scalar tensor).
        wheels: training-wheels factor in [0, 1] (scalar tensor).

    Returns:
        dict of `[B, N, ...]` float32 tensors: "where_mean", "where_std", "where_logits" `[.., 4]`
        (y, x, h, w in logit space), "boxes" `[.., 4]` normalised, "what_mean", "what_std", "z_what"
        `[.., A]`, "depth_mean", "depth_std", "z_depth" `[.., 1]`, "pres_logits", "z_pres" `[.., 1]`.
    """

    def __init__(self, num_what=50, cell_hidden=(100, 100), passthrough_features=100, encoder_hidden=(512, 256),
                 object_size=(14, 14), cell_size=12, anchor_size=(48.0, 48.0), box_bounds=(-0.5, 1.5),
                 lateral_context=True, what_hidden=None, **kwargs):
        # Inputs keep their dtypes (noise, temperature and the posterior math are float32); only the
        # MLPs compute in the layer's compute dtype under a mixed-precision policy.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.num_what, self.passthrough_features = num_what, passthrough_features
        self.cell_hidden, self.encoder_hidden = tuple(cell_hidden), tuple(encoder_hidden)
        self.object_size, self.cell_size = tuple(object_size), cell_size
        self.anchor_size, self.box_bounds = tuple(anchor_size), tuple(box_bounds)
        self.lateral_context = lateral_context
        self.what_hidden = None if what_hidden is None else tuple(what_hidden)
        self.latent_size = 4 + num_what + 2
        self.box_net = MLP(cell_hidden, 8 + passthrough_features, dtype=self.dtype_policy, name="box_net")
        encoded = 2 * num_what if self.what_hidden is None else num_what
        self.object_encoder = MLP(encoder_hidden, encoded, dtype=self.dtype_policy, name="object_encoder")
        if self.what_hidden is not None:
            self.what_net = MLP(self.what_hidden, 2 * num_what + passthrough_features, dtype=self.dtype_policy,
                                name="what_net")
        self.depth_net = MLP(cell_hidden, 2 + passthrough_features, dtype=self.dtype_policy, name="depth_net")
        self.pres_net = MLP(cell_hidden, 1, dtype=self.dtype_policy, name="pres_net")

    def get_config(self):
        config = super().get_config()
        config.update(num_what=self.num_what, cell_hidden=self.cell_hidden,
                      passthrough_features=self.passthrough_features, encoder_hidden=self.encoder_hidden,
                      object_size=self.object_size, cell_size=self.cell_size, anchor_size=self.anchor_size,
                      box_bounds=self.box_bounds, lateral_context=self.lateral_context)
        if self.what_hidden is not None:  # absent for SPAIR, so SPAIR configs stay as they were
            config.update(what_hidden=self.what_hidden)
        return config

    def build(self, images_shape, features_shape):
        num_features = features_shape[-1]
        context = len(NEIGHBOURS) * self.latent_size if self.lateral_context else 0
        base = num_features + context
        self.box_net.build((None, base))
        self.object_encoder.build((None, self.object_size[0] * self.object_size[1] * images_shape[-1]))
        if self.what_hidden is not None:
            self.what_net.build((None, base + self.passthrough_features + self.num_what + 4))
        self.depth_net.build((None, base + self.passthrough_features + 4 + self.num_what))
        self.pres_net.build((None, base + self.passthrough_features + 4 + self.num_what + 1))
        self.edge = self.add_weight(name="edge", shape=(self.latent_size,), initializer="zeros")

    def _edge_latent(self):
        """The learned out-of-grid neighbour: sigmoid on its box and pres parts (original code)."""
        edge = tf.cast(self.edge, tf.float32)
        box, what, depth, pres = tf.split(edge, [4, self.num_what, 1, 1])
        return tf.concat([tf.sigmoid(box), what, depth, tf.sigmoid(pres)], 0)

    def _box(self, where_logits, row, col, image_height, image_width):
        """z_where logits [B, (N,) 4] of cell(s) (row, col) -> normalised box and latent box, each [B, (N,) 4]."""
        low, high = self.box_bounds
        unit = tf.sigmoid(tf.clip_by_value(where_logits, -LOGIT_CLIP, LOGIT_CLIP))
        cell_y, cell_x, rel_h, rel_w = tf.unstack(unit, axis=-1)
        cell_y = (high - low) * cell_y + low  # centre within the cell, in cells, in (low, high)
        cell_x = (high - low) * cell_x + low
        height = rel_h * self.anchor_size[0] / image_height  # normalised box size
        width = rel_w * self.anchor_size[1] / image_width
        centre_y = self.cell_size * (cell_y + tf.cast(row, tf.float32)) / image_height
        centre_x = self.cell_size * (cell_x + tf.cast(col, tf.float32)) / image_width
        boxes = tf.stack([centre_y - height / 2, centre_x - width / 2, centre_y + height / 2,
                          centre_x + width / 2], axis=-1)
        return boxes, tf.stack([cell_y, cell_x, rel_h, rel_w], axis=-1)

    def _cell(self, images, feature, context, noise, row, col, hard_pres, temperature, wheels):
        """One cell (`feature` [B, F], `row`, `col` scalars) or every cell at once (`feature` [B, N, F], `row`,
        `col` [N], no lateral context) for the whole batch; returns (outputs dict of [B, (N,) ...], latent
        [B, (N,) L])."""
        shape = tf.shape(images)
        image_height, image_width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        base = feature if context is None else tf.concat([feature, context], -1)  # [B, (N,) F (+4L)]

        box_out = tf.cast(self.box_net(base), tf.float32)  # [B, (N,) 8 + P]
        where_mean = training_wheels(box_out[..., :4], wheels)
        where_std = training_wheels(positive_std(box_out[..., 4:8]), wheels)
        where_logits = where_mean + where_std * noise["where"]
        boxes, latent_box = self._box(where_logits, row, col, image_height, image_width)

        object_boxes = tf.reshape(boxes, [shape[0], -1, 4])  # [B, 1 or N, 4]
        glimpse = extract_glimpses(images, object_boxes, self.object_size)  # [B, 1 or N, h_obj, w_obj, C]
        glimpse = tf.reshape(glimpse, tf.concat([tf.shape(boxes)[:-1], [-1]], 0))  # [B, (N,) h_obj·w_obj·C]
        passthrough = tf.cast(box_out[..., 8:], base.dtype)
        what_out = self.object_encoder(glimpse)
        if self.what_hidden is not None:  # SILOT's d_obj then d_what (the encoder's output: glimpse features)
            what_in = tf.concat([base, passthrough, tf.cast(what_out, base.dtype), tf.cast(latent_box, base.dtype)],
                                -1)
            what_out = self.what_net(what_in)
            passthrough = tf.cast(what_out[..., 2 * self.num_what :], base.dtype)
        what_out = tf.cast(what_out, tf.float32)
        what_mean = what_out[..., : self.num_what]
        what_std = positive_std(what_out[..., self.num_what : 2 * self.num_what])
        z_what = what_mean + what_std * noise["what"]

        depth_in = tf.concat([base, passthrough, tf.cast(latent_box, base.dtype), tf.cast(z_what, base.dtype)], -1)
        depth_out = tf.cast(self.depth_net(depth_in), tf.float32)
        depth_mean = training_wheels(depth_out[..., :1], wheels)
        depth_std = training_wheels(positive_std(depth_out[..., 1:2]), wheels)
        z_depth = depth_mean + depth_std * noise["depth"]

        pres_in = tf.concat([base, tf.cast(depth_out[..., 2:], base.dtype), tf.cast(latent_box, base.dtype),
                             tf.cast(z_what, base.dtype), tf.cast(z_depth, base.dtype)], -1)
        pres_logits = tf.clip_by_value(tf.cast(self.pres_net(pres_in), tf.float32), -LOGIT_CLIP, LOGIT_CLIP)
        pres_logits = training_wheels(pres_logits, wheels)
        # Concrete (relaxed Bernoulli) in logistic form: sigmoid((logit + L) / T), L ~ Logistic(0, 1).
        pre_sigmoid = (pres_logits + noise["pres"]) / temperature
        z_pres = tf.where(hard_pres, tf.cast(pre_sigmoid > 0, tf.float32), tf.sigmoid(pre_sigmoid))

        outputs = dict(where_mean=where_mean, where_std=where_std, where_logits=where_logits, boxes=boxes,
                       what_mean=what_mean, what_std=what_std, z_what=z_what, depth_mean=depth_mean,
                       depth_std=depth_std, z_depth=z_depth, pres_logits=pres_logits, z_pres=z_pres)
        latent = tf.concat([latent_box, z_what, z_depth, z_pres], -1)  # [B, (N,) L]
        return outputs, latent

    def call(self, images, features, noise, hard_pres, temperature, wheels):
        images = tf.cast(images, tf.float32)
        shape = tf.shape(features)
        batch, grid_h, grid_w = shape[0], shape[1], shape[2]
        num_cells = grid_h * grid_w
        if not self.lateral_context:
            # Cells that do not see each other: all at once, the cells an axis of every op.
            cells = tf.range(num_cells)
            flat = tf.reshape(features, tf.stack([batch, num_cells, features.shape[-1]]))  # [B, N, F]
            outputs, _ = self._cell(images, flat, None, noise, cells // grid_w, cells % grid_w, hard_pres,
                                    temperature, wheels)
            return outputs  # dict of [B, N, ...]
        keys = ("where_mean", "where_std", "where_logits", "boxes", "what_mean", "what_std", "z_what",
                "depth_mean", "depth_std", "z_depth", "pres_logits", "z_pres")
        if None not in features.shape[1:3]:
            return self._unrolled(images, features, noise, hard_pres, temperature, wheels, keys)
        # Unknown grid size (e.g. an exported SavedModel): a graph loop. Latents of processed cells on a grid
        # padded by one row above and one column each side, so every neighbour index is valid; unprocessed
        # and out-of-grid entries hold the edge latent.
        grid = tf.tile(self._edge_latent()[None, None, None], [grid_h + 1, grid_w + 2, batch, 1])  # [h+1, w+2, B, L]
        arrays = {key: tf.TensorArray(tf.float32, size=num_cells, element_shape=None) for key in keys}
        noise_by_cell = {key: tf.transpose(value, [1, 0, 2]) for key, value in noise.items()}  # [N, B, ...]

        def body(k, grid, arrays):
            row, col = k // grid_w, k % grid_w
            feature = features[:, row, col]  # [B, F]
            indices = tf.stack([[row + 1 + dy, col + 1 + dx] for dy, dx in NEIGHBOURS])  # [4, 2]
            context = tf.transpose(tf.gather_nd(grid, indices), [1, 0, 2])  # [B, 4, L]
            context = tf.cast(tf.reshape(context, [batch, -1]), feature.dtype)
            cell_noise = {key: value[k] for key, value in noise_by_cell.items()}
            outputs, latent = self._cell(images, feature, context, cell_noise, row, col, hard_pres,
                                         temperature, wheels)
            grid = tf.tensor_scatter_nd_update(grid, [[row + 1, col + 1]], latent[None])
            arrays = {key: arrays[key].write(k, outputs[key]) for key in keys}
            return k + 1, grid, arrays

        _, _, arrays = tf.while_loop(lambda k, *_: k < num_cells, body, (0, grid, arrays))
        return {key: tf.transpose(array.stack(), [1, 0, 2]) for key, array in arrays.items()}  # [B, N, ...]

    def _unrolled(self, images, features, noise, hard_pres, temperature, wheels, keys):
        """The cell loop for a grid known when tracing (training, fixed image size), unrolled in Python: the
        neighbours' latents are looked up in a dict instead of a grid tensor (no gather or scatter per cell),
        the cells' features and noise are split once, and the outputs stacked once. The same computation as
        the graph loop (tested); about 2x faster forward and backward on CPU than a while loop, since
        TensorFlow can then fuse and overlap the cells' small ops."""
        grid_h, grid_w = features.shape[1], features.shape[2]
        batch = tf.shape(features)[0]
        cell_features = tf.unstack(tf.reshape(features, [batch, grid_h * grid_w, features.shape[-1]]), axis=1)
        cell_noise = {key: tf.unstack(value, num=grid_h * grid_w, axis=1) for key, value in noise.items()}
        edge = tf.tile(self._edge_latent()[None], [batch, 1])  # [B, L]: out-of-grid neighbours
        latents, outputs = {}, {key: [] for key in keys}
        for k, feature in enumerate(cell_features):
            row, col = divmod(k, grid_w)
            context = tf.concat([latents.get((row + dy, col + dx), edge) for dy, dx in NEIGHBOURS], -1)  # [B, 4L]
            cell, latents[row, col] = self._cell(
                images, feature, tf.cast(context, feature.dtype), {key: value[k] for key, value in cell_noise.items()},
                row, col, hard_pres, temperature, wheels)
            for key in keys:
                outputs[key].append(cell[key])
        return {key: tf.stack(value, axis=1) for key, value in outputs.items()}  # [B, N, ...]


@keras.saving.register_keras_serializable(package="tfobj")
class ObjectDecoder(keras.layers.Layer):
    """z_what -> appearance and alpha maps (original code: MLP[256, 512] -> h_obj x w_obj x (C + 1) logits).

    Args (the `SPAIRConfig` fields of the same names):
        decoder_hidden: hidden units of the MLP.
        object_size: (h_obj, w_obj) of the sprites.
        appearance_logit_scale: appearance = sigmoid(scale · logit).
        alpha_logit_scale, alpha_logit_bias: alpha = sigmoid(scale · logit + bias).
        channels: image channels C.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        z_what: float `[B, N, A]`.

    Returns:
        (appearance `[B, N, h_obj, w_obj, C]` = sigmoid(2·logit), alpha `[B, N, h_obj, w_obj, 1]` =
        sigmoid(0.1·logit + 5)), float32.
    """

    def __init__(self, decoder_hidden=(256, 512), object_size=(14, 14), appearance_logit_scale=2.0,
                 alpha_logit_scale=0.1, alpha_logit_bias=5.0, channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.decoder_hidden, self.object_size = tuple(decoder_hidden), tuple(object_size)
        self.appearance_logit_scale, self.alpha_logit_scale = appearance_logit_scale, alpha_logit_scale
        self.alpha_logit_bias, self.channels = alpha_logit_bias, channels
        h, w = self.object_size
        self.mlp = MLP(decoder_hidden, h * w * (channels + 1), dtype=self.dtype_policy, name="mlp")

    def get_config(self):
        config = super().get_config()
        config.update(decoder_hidden=self.decoder_hidden, object_size=self.object_size,
                      appearance_logit_scale=self.appearance_logit_scale, alpha_logit_scale=self.alpha_logit_scale,
                      alpha_logit_bias=self.alpha_logit_bias, channels=self.channels)
        return config

    def build(self, z_what_shape):
        self.mlp.build(z_what_shape)

    def call(self, z_what):
        shape = tf.shape(z_what)
        logits = tf.cast(self.mlp(z_what), tf.float32)
        logits = tf.reshape(logits, tf.concat([shape[:2], list(self.object_size), [self.channels + 1]], 0))
        appearance_logits, alpha_logits = tf.split(logits, [self.channels, 1], axis=-1)  # one op, not two slices
        appearance = tf.sigmoid(tf.clip_by_value(self.appearance_logit_scale * appearance_logits, -LOGIT_CLIP, LOGIT_CLIP))
        alpha = tf.sigmoid(tf.clip_by_value(self.alpha_logit_scale * alpha_logits + self.alpha_logit_bias,
                                            -LOGIT_CLIP, LOGIT_CLIP))
        return appearance, alpha
