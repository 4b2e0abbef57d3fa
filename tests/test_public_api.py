"""The names users import from tfobj resolve to the implementations."""
import numpy as np
import pytest

import tfobj
import tfobj.ops
from tfobj.models.baselines.conncomp import ConnComp
from tfobj.models.spair import count_prior
from tfobj.models.spair.spair import SPAIR


def test_top_level_names():
    assert tfobj.ConnComp is ConnComp and tfobj.SPAIR is SPAIR
    assert tfobj.count_prior_kl is count_prior.count_prior_kl
    assert tfobj.count_prior_log_prob is count_prior.count_prior_log_prob
    assert callable(tfobj.render_sprites) and callable(tfobj.load_mnist)
    assert sorted(tfobj.__all__) == tfobj.__all__


def test_ops_connected_components_is_the_function():
    labels = tfobj.ops.connected_components(np.array([[1, 0, 1], [1, 0, 0]]))
    np.testing.assert_array_equal(labels.numpy(), [[1, 0, 2], [1, 0, 0]])


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'NotAModel'"):
        tfobj.NotAModel
