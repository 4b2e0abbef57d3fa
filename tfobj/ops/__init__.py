"""tfobj.ops: pure-TensorFlow ops (connected components) and the box conventions.

`tfobj.ops.connected_components` is the function (it shadows its module's name here; import the
module's other names with `from tfobj.ops.connected_components import ...`).
"""
from tfobj.ops.connected_components import connected_components, tfa_available

__all__ = ["connected_components", "tfa_available"]
