"""Training plumbing: schedules and Keras callbacks."""
