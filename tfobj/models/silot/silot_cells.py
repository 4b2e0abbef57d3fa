"""SILOT's two modules: discovery (SPAIR's cells on the current frame, informed of the propagated objects, B.1)
and the propagation cell (each object of the previous frame carried to this one, A.1, B.2).

Units (silot_math's docstring): positions y, x in anchor units (pixels / 48) from the image's top-left corner;
sizes h, w as fractions of the anchor; depth in (0, 1), larger = in front; presence z_pres in [0, 1].
Dimension letters (docs/conventions.md): B batch, H, W image, h, w grid cells, N = h·w discovered objects in
raster order, K propagated objects, A = size of what, S = size of the hidden state, D attention features,
F = 2 + A + 1 + 1 + S object features (every attribute but y, x: size, what, depth, pres, hidden).

An object set is a dict of float32 tensors: "position" `[B, K, 2]`, "size" `[B, K, 2]`, "what" `[B, K, A]`,
"depth" `[B, K, 1]`, "pres" `[B, K, 1]`, "hidden" `[B, K, S]`.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfobj.layers.glimpse import extract_glimpses
from tfobj.layers.mlp import MLP
from tfobj.layers.padded_conv_backbone import PaddedConvBackbone
from tfobj.models.silot.silot_layers import DiscoveryAttention, PropagationAttention
from tfobj.models.silot.silot_math import (
    gated_what, glimpse_box, logit, object_boxes, object_positions, update_depth, update_position, update_presence,
    update_size)
from tfobj.models.spair.spair_layers import LOGIT_CLIP, SPAIRCellEncoder, positive_std, training_wheels

__all__ = ["DiscoveryModule", "PropagationCell", "object_features", "SILOT_BACKBONE_LAYERS"]

# d_bu's strided convolutions (kernel, stride), supplement E.1: cells of 3·2·2 = 12 pixels.
SILOT_BACKBONE_LAYERS = ((4, 3), (4, 2), (4, 2))


def object_features(objects):
    """The attributes the spatial attention sees besides y, x (B: o^{∖yx}): [size, what, depth, pres, hidden]
    `[B, K, F]`."""
    return tf.concat([objects[key] for key in ("size", "what", "depth", "pres", "hidden")], axis=-1)


def _image_size(images):
    shape = tf.shape(images)
    return shape[1], shape[2]


@keras.saving.register_keras_serializable(package="tfobj")
class DiscoveryModule(keras.layers.Layer):
    """Discovers up to one new object per 12-pixel cell of the current frame (SILOT section 3.3, supplement B.1).

        features = d_bu(frame)                                  [B, h, w, F_bu]   (E.1: k4 s3, k4 s2, k4 s2, 3× 1×1)
        v_td     = SpatialAttention_disc(propagated objects)    [B, h, w, D]      (B.1)
        fused    = d_fuse([v_td, features])                     [B, h, w, F_bu]   (Table 2: FC([100, 100]) per cell)
        objects  = SPAIR's cell heads on `fused`, no lateral context (every cell at once): d_where → z_where →
                   glimpse → d_obj → d_what → z_what → d_depth → z_depth → d_pres → z_pres (Concrete)

    The backbone is SPAIR's right/bottom-padded one (`PaddedConvBackbone`) with SILOT's strides; the cell heads
    are `SPAIRCellEncoder(lateral_context=False, what_hidden=...)`. A discovered object's centre lies within
    (b_min, b_max) cells of its cell's top-left corner; its size is at most the anchor.

    Args:
        num_what: A.
        backbone_filters: filters of d_bu's layers but the last (E.1: 128).
        backbone_features: F_bu, the last 1×1 conv's filters and d_fuse's output (E.1: 128).
        spatial_hidden: d_spatial's hidden units (Table 2: (64, 64)).
        attention_features: D, d_spatial's output (original code: 64).
        attention_std: σ of the attention kernel, anchor units (Table 1: 0.1).
        presence_weighted: weight each propagated object's attention term by its z_pres.
        fuse_hidden: d_fuse's hidden units (Table 2: (100, 100)).
        cell_hidden: hidden units of d_where, d_depth and d_pres (Table 2: (100, 100) each; SPAIR's cells share one).
        passthrough_features: features each head passes to the next (original code: 64).
        glimpse_hidden: d_obj's hidden units (Table 2: (256, 128)); it outputs A glimpse features.
        what_hidden: d_what's hidden units (Table 2: (100, 100)).
        hidden_size: S; discovered objects get the trainable initial hidden state (A.1), held here.
        object_size: (H_obj, W_obj) of the glimpses (Table 1: (14, 14)).
        cell_size: pixels per cell, fixed by the backbone (12).
        anchor_size: (a_h, a_w) pixels (Table 1: (48, 48)); must be square (the attention's cell size is a scalar).
        box_bounds: (b_min, b_max) in cells (Table 1: (−0.5, 1.5)).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        images: float `[B, H, W, C]` in [0, 1], H and W multiples of 12.
        objects: the propagated objects (module docstring), K ≥ 0 of them (K = 0: no top-down information).
        noise: dict of standard noise for the N = h·w cells, as `SPAIRCellEncoder`: "where" `[B, N, 4]`, "what"
            `[B, N, A]`, "depth" `[B, N, 1]` Normal(0, 1) (zeros: the posterior mode), "pres" `[B, N, 1]`
            Logistic(0, 1).
        hard_pres: bool tensor; True: z_pres = 1[pre-sigmoid sample > 0], else the relaxed Concrete sample.
        temperature: the Concrete temperature (scalar tensor).
        wheels: the training-wheels factor in [0, 1] (E.1: no gradient into where, depth, pres while 1).

    Returns:
        dict of float32 `[B, N, ...]`, the N discovered objects in raster order: the object set ("position",
        "size", "what", "depth", "pres", "hidden") and "boxes" `[B, N, 4]` normalised (y_min, x_min, y_max,
        x_max); the posterior parameters for the KL terms (Table 1's discovery priors): "where_mean",
        "where_std" `[.., 4]` of the logits of (cell y, cell x, h, w), "what_mean", "what_std" `[.., A]`,
        "depth_mean", "depth_std" `[.., 1]` of the depth logit, "pres_logits" `[.., 1]`; and the samples
        "where_logits", "z_what", "z_depth" (logit), "z_pres" (= "pres").
    """

    def __init__(self, num_what=64, backbone_filters=128, backbone_features=128, spatial_hidden=(64, 64),
                 attention_features=64, attention_std=0.1, presence_weighted=True, fuse_hidden=(100, 100),
                 cell_hidden=(100, 100), passthrough_features=64, glimpse_hidden=(256, 128), what_hidden=(100, 100),
                 hidden_size=128, object_size=(14, 14), cell_size=12, anchor_size=(48.0, 48.0),
                 box_bounds=(-0.5, 1.5), **kwargs):
        kwargs.setdefault("autocast", False)  # noise and posterior math stay float32 (as SPAIRCellEncoder)
        super().__init__(**kwargs)
        if anchor_size[0] != anchor_size[1]:
            raise ValueError(f"DiscoveryModule: anchor_size must be square; got {anchor_size}")
        self.num_what, self.backbone_filters, self.backbone_features = num_what, backbone_filters, backbone_features
        self.spatial_hidden, self.attention_features = tuple(spatial_hidden), attention_features
        self.attention_std, self.presence_weighted = attention_std, presence_weighted
        self.fuse_hidden, self.cell_hidden = tuple(fuse_hidden), tuple(cell_hidden)
        self.passthrough_features = passthrough_features
        self.glimpse_hidden, self.what_hidden = tuple(glimpse_hidden), tuple(what_hidden)
        self.hidden_size, self.object_size, self.cell_size = hidden_size, tuple(object_size), cell_size
        self.anchor_size, self.box_bounds = tuple(anchor_size), tuple(box_bounds)
        self.backbone = PaddedConvBackbone(backbone_filters, backbone_features, strided_layers=SILOT_BACKBONE_LAYERS,
                                           dtype=self.dtype_policy, name="backbone")
        if self.backbone.cell_size != cell_size:
            raise ValueError(f"DiscoveryModule: cell_size must be {self.backbone.cell_size} (the backbone's "
                             f"strides {SILOT_BACKBONE_LAYERS}); got {cell_size}")
        self.attention = DiscoveryAttention(spatial_hidden, attention_features, std=attention_std,
                                            cell_size=cell_size / anchor_size[0], dtype=self.dtype_policy,
                                            name="attention")
        self.fuse = MLP(fuse_hidden, backbone_features, dtype=self.dtype_policy, name="fuse")
        self.cells = SPAIRCellEncoder(
            num_what=num_what, cell_hidden=cell_hidden, passthrough_features=passthrough_features,
            encoder_hidden=glimpse_hidden, object_size=object_size, cell_size=cell_size, anchor_size=anchor_size,
            box_bounds=box_bounds, lateral_context=False, what_hidden=what_hidden, dtype=self.dtype_policy,
            name="cells")

    def build(self, images_shape, objects_shape=None, *args, **kwargs):
        images_shape = tuple(images_shape)
        features_shape = self.backbone.compute_output_shape(images_shape)
        self.backbone.build(images_shape)
        object_size = 2 + self.num_what + 1 + 1 + self.hidden_size
        self.attention.build((None, None, object_size))
        self.fuse.build((None, self.attention_features + self.backbone_features))
        self.cells.build(images_shape, features_shape)
        # Without lateral context SPAIRCellEncoder's out-of-grid neighbour latent is unused: not trained (so every
        # trainable weight of SILOT has a gradient), still saved with the others.
        self.cells.edge.trainable = False
        self.initial_hidden = self.add_weight(name="initial_hidden", shape=(self.hidden_size,), initializer="zeros")

    def call(self, images, objects, noise, hard_pres, temperature, wheels):
        images = tf.cast(images, tf.float32)
        features = self.backbone(tf.cast(images, self.compute_dtype))  # [B, h, w, F_bu]
        shape = tf.shape(features)
        batch, grid_h, grid_w = shape[0], shape[1], shape[2]
        presence = objects["pres"][..., 0] if self.presence_weighted else None
        top_down = self.attention(tf.cast(object_features(objects), self.compute_dtype), objects["position"],
                                  grid_shape=(grid_h, grid_w), presence=presence)  # [B, h, w, D]
        fused = self.fuse(tf.concat([top_down, tf.cast(features, top_down.dtype)], axis=-1))  # [B, h, w, F_bu]
        cells = self.cells(images, fused, noise, hard_pres, temperature, wheels)  # dict of [B, N, ...]
        outputs = dict(cells)
        unit = tf.sigmoid(tf.clip_by_value(cells["where_logits"], -LOGIT_CLIP, LOGIT_CLIP))  # [B, N, 4]
        hidden = tf.cast(self.initial_hidden, tf.float32)[None, None]  # [1, 1, S]
        outputs.update(
            position=object_positions(cells["boxes"], _image_size(images), self.anchor_size),  # [B, N, 2]
            size=unit[..., 2:],  # [B, N, 2] fraction of the anchor
            depth=tf.sigmoid(tf.clip_by_value(cells["z_depth"], -LOGIT_CLIP, LOGIT_CLIP)),  # [B, N, 1]
            what=cells["z_what"], pres=cells["z_pres"],
            hidden=tf.tile(hidden, tf.stack([batch, grid_h * grid_w, 1])),  # [B, N, S]
        )
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            num_what=self.num_what, backbone_filters=self.backbone_filters, backbone_features=self.backbone_features,
            spatial_hidden=self.spatial_hidden, attention_features=self.attention_features,
            attention_std=self.attention_std, presence_weighted=self.presence_weighted, fuse_hidden=self.fuse_hidden,
            cell_hidden=self.cell_hidden, passthrough_features=self.passthrough_features,
            glimpse_hidden=self.glimpse_hidden, what_hidden=self.what_hidden, hidden_size=self.hidden_size,
            object_size=self.object_size, cell_size=self.cell_size, anchor_size=self.anchor_size,
            box_bounds=self.box_bounds)
        return config


@keras.saving.register_keras_serializable(package="tfobj")
class PropagationCell(keras.layers.Layer):
    """Carries every object of the previous frame to the current one (SILOT section 3.4; supplement A.1, B.2).

    Per object (all K at once; each step's inputs in brackets):

        u        = SpatialAttention_prop(objects)                         (B.2: p_id, p_spatial)
        glimpse′ = glimpse at box + 0.1·p_glimpse(u), encoded by p_bu     (original code, after SQAIR)
        z̃^where ~ N(p_where([u, enc′]))                                 y, x, h, w
        y, x     = f^{y/x}(o^{y/x}, z̃^{y/x}) = o + tanh(z̃)               (A.1)
        h, w     = f^{h/w}(o^{h/w}, z̃^{h/w}) = sigm(sigm⁻¹(o) + z̃)        (A.1; fractions of the anchor)
        glimpse  = glimpse at the new box, encoded by p_obj
        what     ~ N(gated_what(...))  ("gated": p_what([u, box, enc]) and a glimpse-only head; SQAIR)
                   or o^what + z̃^what, z̃^what ~ N(p_what([u, box, enc]))   ("additive")
        z̃^depth ~ N(p_depth([u, box, what, enc])); depth = sigm(sigm⁻¹(o^depth) + z̃^depth)   (A.1)
        z_pres   = o^pres · Concrete(p_pres([u, box, what, depth, enc]))   (original code; SPAIR's relaxation)
        hidden   = p_rnn(o^hidden, [y, x, h, w, what, depth, z_pres])     (A.1: GRU(S))

    with box = [z̃^where, h, w]. Training wheels (E.1) scale the gradient into the where, depth and pres heads.
    With `posterior=False` the cell is the learned prior (section 3.8, G.1): the same networks without the frame
    (no glimpses; their encodings are zeros), its means and standard deviations the prior of the posterior cell's
    KL terms (`silot_math.propagation_kl`).

    Args:
        num_what: A.
        hidden_size: S, the GRU's units (Table 2: 128).
        attention_features: D, the output of p_id and p_spatial (original code: 64).
        object_hidden, spatial_hidden: hidden units of p_id and p_spatial (Table 2: (64, 64) each).
        attention: B.2's inter-object term on (the seed) or off (original code, Scattered MNIST).
        attention_std: σ of the kernel, anchor units (Table 1: 0.1).
        presence_weighted: weight each object's attention term by its z_pres.
        glimpse_where_hidden: p_glimpse's (Table 2: (100, 100)).
        first_glimpse_hidden: p_bu's (Table 2: (256, 128)); output A features.
        where_hidden: p_where's (Table 2: (100, 100)).
        second_glimpse_hidden: p_obj's (Table 2: (256, 128)); output A features.
        what_hidden, depth_hidden, pres_hidden: p_what's, p_depth's, p_pres's (Table 2: (100, 100) each).
        what_update: "gated" or "additive" (`SILOTConfig.what_update`).
        object_size: (H_obj, W_obj) of the glimpses.
        anchor_size: (a_h, a_w) pixels.
        posterior: True: the inference network (sees the frame); False: the learned prior.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        images: float `[B, H, W, C]`, the current frame (unused when `posterior=False`).
        objects: the previous frame's K objects (module docstring).
        noise: dict of standard noise: "where" `[B, K, 4]`, "what" `[B, K, A]`, "depth" `[B, K, 1]` Normal(0, 1)
            (zeros: the mode), "pres" `[B, K, 1]` Logistic(0, 1).
        hard_pres: bool tensor; True: the Concrete factor is 1[pre-sigmoid > 0].
        temperature: the Concrete temperature (scalar tensor).
        wheels: the training-wheels factor in [0, 1].

    Returns:
        dict of float32 `[B, K, ...]`: the new object set ("position", "size", "what", "depth", "pres", "hidden"),
        "boxes" `[.., 4]` normalised; for the KL terms "where_mean", "where_std" `[.., 4]` and the sample
        "z_where" of z̃^{y,x,h,w}, "size_logit_mean" `[.., 2]` = sigm⁻¹(o^{h,w}) + mean, "what_mean",
        "what_std" `[.., A]` of the update (new − old what), "depth_mean", "depth_std", "z_depth" `[.., 1]` of
        z̃^depth, "pres_logits", "pres_pre_sigmoid" `[.., 1]`, "pres_factor" `[.., 1]` (the Concrete sample);
        "glimpse_boxes" `[.., 4]` normalised (posterior only) and "what_gates" `[.., 3A]` (gated only).
    """

    def __init__(self, num_what=64, hidden_size=128, attention_features=64, object_hidden=(64, 64),
                 spatial_hidden=(64, 64), attention=True, attention_std=0.1, presence_weighted=True,
                 glimpse_where_hidden=(100, 100), first_glimpse_hidden=(256, 128), where_hidden=(100, 100),
                 second_glimpse_hidden=(256, 128), what_hidden=(100, 100), depth_hidden=(100, 100),
                 pres_hidden=(100, 100), what_update="gated", object_size=(14, 14), anchor_size=(48.0, 48.0),
                 posterior=True, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if what_update not in ("gated", "additive"):
            raise ValueError(f"PropagationCell: what_update must be 'gated' or 'additive'; got {what_update!r}")
        self.num_what, self.hidden_size, self.attention_features = num_what, hidden_size, attention_features
        self.object_hidden, self.spatial_hidden = tuple(object_hidden), tuple(spatial_hidden)
        self.attention, self.attention_std, self.presence_weighted = attention, attention_std, presence_weighted
        self.glimpse_where_hidden, self.first_glimpse_hidden = tuple(glimpse_where_hidden), tuple(first_glimpse_hidden)
        self.where_hidden, self.second_glimpse_hidden = tuple(where_hidden), tuple(second_glimpse_hidden)
        self.what_hidden, self.depth_hidden = tuple(what_hidden), tuple(depth_hidden)
        self.pres_hidden = tuple(pres_hidden)
        self.what_update, self.object_size = what_update, tuple(object_size)
        self.anchor_size, self.posterior = tuple(anchor_size), posterior
        policy = self.dtype_policy
        self.spatial_attention = PropagationAttention(object_hidden, spatial_hidden, attention_features,
                                                      std=attention_std, attention=attention, dtype=policy,
                                                      name="attention")
        if posterior:
            self.glimpse_where_net = MLP(glimpse_where_hidden, 4, dtype=policy, name="glimpse_where_net")
            self.first_glimpse_encoder = MLP(first_glimpse_hidden, num_what, dtype=policy, name="first_glimpse_encoder")
            self.second_glimpse_encoder = MLP(second_glimpse_hidden, num_what, dtype=policy,
                                              name="second_glimpse_encoder")
        self.where_net = MLP(where_hidden, 8, dtype=policy, name="where_net")
        what_outputs = 5 * num_what if what_update == "gated" else 2 * num_what
        self.what_net = MLP(what_hidden, what_outputs, dtype=policy, name="what_net")
        if what_update == "gated":
            self.what_input_net = MLP(what_hidden, 2 * num_what, dtype=policy, name="what_input_net")
        self.depth_net = MLP(depth_hidden, 2, dtype=policy, name="depth_net")
        self.pres_net = MLP(pres_hidden, 1, dtype=policy, name="pres_net")
        self.rnn = keras.layers.GRUCell(hidden_size, dtype=policy, name="rnn")

    def build(self, images_shape, objects_shape=None, *args, **kwargs):
        channels = images_shape[-1]
        a, d = self.num_what, self.attention_features
        self.spatial_attention.build((None, None, 2 + a + 1 + 1 + self.hidden_size), (None, None, 2))
        glimpse = self.object_size[0] * self.object_size[1] * channels
        if self.posterior:
            self.glimpse_where_net.build((None, d))
            self.first_glimpse_encoder.build((None, glimpse))
            self.second_glimpse_encoder.build((None, glimpse))
        self.where_net.build((None, d + a))
        box = 4 + 2
        self.what_net.build((None, d + box + a))
        if self.what_update == "gated":
            self.what_input_net.build((None, a))
        self.depth_net.build((None, d + box + a + a))
        self.pres_net.build((None, d + box + a + 1 + a))
        self.rnn.build((None, 2 + 2 + a + 1 + 1))

    def _encode(self, images, positions, sizes, encoder):
        """Glimpses at boxes (y, x, h, w) [B, K, 2] each, flattened and encoded: [B, K, A]."""
        boxes = object_boxes(positions, sizes, _image_size(images), self.anchor_size)  # [B, K, 4]
        glimpses = extract_glimpses(images, boxes, self.object_size)  # [B, K, h_obj, w_obj, C]
        shape = tf.shape(glimpses)
        flat = tf.reshape(glimpses, tf.stack([shape[0], shape[1], -1]))  # [B, K, h_obj·w_obj·C]
        return boxes, tf.cast(encoder(tf.cast(flat, self.compute_dtype)), tf.float32)

    def call(self, images, objects, noise, hard_pres, temperature, wheels):
        images = tf.cast(images, tf.float32)
        compute = self.compute_dtype
        position, size = objects["position"], objects["size"]  # [B, K, 2] each
        presence = objects["pres"][..., 0] if self.presence_weighted else None
        u = self.spatial_attention(tf.cast(object_features(objects), compute), position, presence=presence)  # [B, K, D]
        outputs = {}

        # --- where: a first glimpse near the old box, then the update ---
        if self.posterior:
            offsets = tf.cast(self.glimpse_where_net(u), tf.float32)  # [B, K, 4]
            glimpse_position, glimpse_size = glimpse_box(position, size, offsets)
            outputs["glimpse_boxes"], first = self._encode(images, glimpse_position, glimpse_size,
                                                           self.first_glimpse_encoder)  # [B, K, A]
        else:
            first = tf.zeros(tf.concat([tf.shape(u)[:2], [self.num_what]], 0))
        where_out = tf.cast(self.where_net(tf.concat([u, tf.cast(first, compute)], -1)), tf.float32)  # [B, K, 8]
        where_mean = training_wheels(where_out[..., :4], wheels)
        where_std = training_wheels(positive_std(where_out[..., 4:]), wheels)
        z_where = where_mean + where_std * noise["where"]  # [B, K, 4]
        new_position = update_position(position, z_where[..., :2])
        new_size = update_size(size, z_where[..., 2:])
        size_logit = logit(size)  # sigm⁻¹(o^{h,w}), as update_size
        box = tf.cast(tf.concat([z_where, new_size], -1), compute)  # [B, K, 6]

        # --- what: from a glimpse at the new box ---
        if self.posterior:
            outputs["boxes"], second = self._encode(images, new_position, new_size, self.second_glimpse_encoder)
        else:
            outputs["boxes"] = object_boxes(new_position, new_size, _image_size(images), self.anchor_size)
            second = tf.zeros_like(first)
        second_c = tf.cast(second, compute)
        what_out = tf.cast(self.what_net(tf.concat([u, box, second_c], -1)), tf.float32)
        a = self.num_what
        if self.what_update == "gated":
            input_out = tf.cast(self.what_input_net(second_c), tf.float32)  # [B, K, 2A]
            mean, what_std, gates = gated_what(objects["what"], input_out[..., :a], positive_std(input_out[..., a:]),
                                               what_out[..., :a], positive_std(what_out[..., a:2 * a]),
                                               what_out[..., 2 * a:])
            what_mean = mean - objects["what"]  # the update's mean: the prior N(0, 0.4) is on the change
            outputs["what_gates"] = gates
        else:
            what_mean, what_std = what_out[..., :a], positive_std(what_out[..., a:])
        new_what = objects["what"] + what_mean + what_std * noise["what"]  # [B, K, A]

        # --- depth ---
        depth_out = tf.cast(self.depth_net(tf.concat([u, box, tf.cast(new_what, compute), second_c], -1)), tf.float32)
        depth_mean = training_wheels(depth_out[..., :1], wheels)
        depth_std = training_wheels(positive_std(depth_out[..., 1:]), wheels)
        z_depth = depth_mean + depth_std * noise["depth"]
        new_depth = update_depth(objects["depth"], z_depth)  # [B, K, 1]

        # --- presence: a Concrete factor on the old presence ---
        pres_in = tf.concat([u, box, tf.cast(new_what, compute), tf.cast(new_depth, compute), second_c], -1)
        pres_logits = tf.clip_by_value(tf.cast(self.pres_net(pres_in), tf.float32), -LOGIT_CLIP, LOGIT_CLIP)
        pres_logits = training_wheels(pres_logits, wheels)
        pre_sigmoid = (pres_logits + noise["pres"]) / temperature  # Concrete in logistic form, as SPAIR
        factor = tf.where(hard_pres, tf.cast(pre_sigmoid > 0, tf.float32), tf.sigmoid(pre_sigmoid))
        new_pres = update_presence(objects["pres"], factor)  # [B, K, 1]

        # --- hidden state: p_rnn on the new attributes (A.1) ---
        cell_in = tf.concat([new_position, new_size, new_what, new_depth, new_pres], -1)  # [B, K, 2+2+A+1+1]
        shape = tf.shape(cell_in)
        flat_in = tf.reshape(cell_in, tf.stack([-1, shape[2]]))  # [B·K, ...]
        flat_hidden = tf.reshape(objects["hidden"], [-1, self.hidden_size])  # [B·K, S]
        new_hidden, _ = self.rnn(tf.cast(flat_in, compute), [tf.cast(flat_hidden, compute)])
        new_hidden = tf.reshape(tf.cast(new_hidden, tf.float32), tf.stack([shape[0], shape[1], self.hidden_size]))

        outputs.update(
            position=new_position, size=new_size, what=new_what, depth=new_depth, pres=new_pres, hidden=new_hidden,
            where_mean=where_mean, where_std=where_std, z_where=z_where,
            size_logit_mean=size_logit + where_mean[..., 2:],
            what_mean=what_mean, what_std=what_std, depth_mean=depth_mean, depth_std=depth_std, z_depth=z_depth,
            pres_logits=pres_logits, pres_pre_sigmoid=pre_sigmoid, pres_factor=factor,
        )
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            num_what=self.num_what, hidden_size=self.hidden_size, attention_features=self.attention_features,
            object_hidden=self.object_hidden, spatial_hidden=self.spatial_hidden, attention=self.attention,
            attention_std=self.attention_std, presence_weighted=self.presence_weighted,
            glimpse_where_hidden=self.glimpse_where_hidden, first_glimpse_hidden=self.first_glimpse_hidden,
            where_hidden=self.where_hidden, second_glimpse_hidden=self.second_glimpse_hidden,
            what_hidden=self.what_hidden, depth_hidden=self.depth_hidden, pres_hidden=self.pres_hidden,
            what_update=self.what_update, object_size=self.object_size, anchor_size=self.anchor_size,
            posterior=self.posterior)
        return config
