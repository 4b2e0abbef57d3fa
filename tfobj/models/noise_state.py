"""The noise generator's state as training state, for models that draw noise from `self.seed_generator`."""
from __future__ import annotations


class SavesNoiseState:
    """Mixin for a `keras.Model` with a `keras.random.SeedGenerator` in `self.seed_generator`.

    Keras does not save a SeedGenerator's state with the weights, so a run restored by `BackupAndRestore`
    (or `fit_model(resume=True)`) would redraw the noise from the start of training. Saving the state under
    its own key makes a resumed run draw the same noise as an uninterrupted one. Files without the key (older
    ones) load, keeping the current state. Put it before `keras.Model` in the bases.
    """

    _RNG_KEY = "noise_seed_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._RNG_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        super().load_own_variables({key: store[key] for key in keys if key != self._RNG_KEY})
        if self._RNG_KEY in keys:
            self.seed_generator.state.assign(store[self._RNG_KEY])
