"""TUSK: task-agnostic unsupervised keypoints (Jin et al., NeurIPS 2022)."""
