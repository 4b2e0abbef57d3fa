"""tfobj.models.baselines."""
