"""Tiny model configs shared by the tests: the smallest networks that still exercise every code path."""
from tfobj.models.spair.spair_config import SPAIRConfig

# SPAIR with 8-unit networks and A = 4: the tests' default (the architecture and the math are the paper's).
TINY_SPAIR = SPAIRConfig(backbone_filters=8, backbone_features=8, cell_hidden=(8, 8), passthrough_features=4,
                         encoder_hidden=(8, 8), decoder_hidden=(8, 8), num_what=4)
