"""What the distributed tests compare: the trained weights a run saved, and their distance from another run's
relative to how far training moved them."""
import numpy as np

def weights(result, kind="last"):
    return [result[key] for key in sorted((k for k in result.files if k.startswith(kind + "/")),
                                          key=lambda k: int(k.split("/")[1]))]


def relative_deviation(actual, expected) -> float:
    """|actual's trained weights - expected's| / |expected's training movement| (Euclidean, all weights)."""
    deviation = sum(np.sum((a - e) ** 2) for a, e in zip(weights(actual), weights(expected), strict=True))
    movement = sum(np.sum((e - f) ** 2) for e, f in zip(weights(expected), weights(expected, "first"), strict=True))
    return float(np.sqrt(deviation / movement))
