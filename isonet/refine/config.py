"""Settings of a refine run: defaults, derived defaults, JSON round trip, resumption.

Every setting of ``isonet.py refine`` (spec §1.6) is a field of
:class:`RefineConfig`. ``None`` in a field means "derive it" (see
:meth:`RefineConfig.resolve`). The resolved settings are written into every
``refine_iterNN.json``; ``--continue_from`` reads them back and lets the
values given explicitly on the command line win.
"""

import dataclasses
import json
import logging
import os
import random
from dataclasses import field, make_dataclass

from isonet.commands import REFINE
from isonet.errors import IsonetError, UsageError
from isonet.io.atomic import atomic_write_text
from isonet.refine.half_pairs import FULL_INPUT_ITERATIONS, subtomo_star_has_halves
from isonet.refine.methods import REGISTRY

log = logging.getLogger("isonet")

#: Settings of earlier versions that are no longer options (the quality benchmark rejected the
#: alternatives, docs/quality.md), with the behaviour every run now has (refresh_batch_norm: the method's).
RETIRED_SETTINGS = {"mw_target": "mean", "mw_guard": 0.0, "fill_wedge": True, "full_input_start": 1,
                    "full_input_stop": FULL_INPUT_ITERATIONS, "full_input_measured": "previous",
                    "masked_loss": False, "dc_weight": 0.0, "random_rotations": False, "refresh_batch_norm": None}


class _Settings:
    """Methods of :class:`RefineConfig` (its fields are made from the refine spec below)."""

    @classmethod
    def from_cli(cls, values):
        """Config from command-line values; ``None`` values keep the defaults.

        Parameters
        ----------
        values : dict
            Setting name -> typed value (``None`` when not given).
        """
        given = {k: v for k, v in values.items() if v is not None}
        unknown = set(given) - set(cls.setting_names())
        if unknown:
            raise UsageError(f"refine: unknown setting(s) {sorted(unknown)}")
        config = cls(**given)
        config.explicit = set(given)
        return config

    @classmethod
    def setting_names(cls):
        """Names of all settings (fields except the bookkeeping ``explicit``)."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "explicit"]

    def to_dict(self):
        """Settings as JSON-ready values (tuples become lists)."""
        out = {}
        for name in self.setting_names():
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values):
        """Inverse of :meth:`to_dict` (unknown keys are ignored; lists of tuple fields become tuples)."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in values and f.name != "explicit":
                value = values[f.name]
                if isinstance(value, list) and isinstance(f.default, tuple):
                    value = tuple(value)
                kwargs[f.name] = value
        return cls(**kwargs)

    def continued_from(self, saved):
        """Settings restored from a saved run with this config's explicit values on top.

        Parameters
        ----------
        saved : RefineConfig
            Settings read from ``refine_iterNN.json``.

        Returns
        -------
        RefineConfig
            ``saved`` with every setting named in ``self.explicit`` replaced by this config's value.
        """
        merged = dataclasses.replace(saved)
        for name in self.explicit:
            setattr(merged, name, getattr(self, name))
        merged.explicit = set(self.explicit)
        return merged

    def resolve(self, n_subtomos, n_replicas):
        """Check every setting against the spec, fill the derived defaults in place; returns ``self``.

        The method (default: ``halves`` when subtomo.star lists half subtomograms, else ``isonet1``; a former
        name is read with a warning) sets the defaults that depend on it
        (:meth:`isonet.refine.methods.base.RefineMethod.derived_defaults`).

        Parameters
        ----------
        n_subtomos : int
            Subtomograms in the STAR file.
        n_replicas : int
            Devices the batch is split over.
        """
        if self.method is None:
            self.method = "halves" if subtomo_star_has_halves(self.subtomo_star) else "isonet1"
        self.method = REFINE["method"].canonical(self.method)
        for name, value in self.to_dict().items():  # saved settings (--continue_from) are checked too
            REFINE[name].check(tuple(value) if isinstance(value, list) else value)
        if self.select_subtomo_number is not None:
            if not 1 <= self.select_subtomo_number <= n_subtomos:
                raise UsageError(f"--select_subtomo_number: expected 1..{n_subtomos} "
                                 f"(subtomograms in the STAR file), got {self.select_subtomo_number}")
        n_used = self.select_subtomo_number or n_subtomos
        if self.batch_size is None:
            self.batch_size = max(4, 2 * n_replicas)
        if self.batch_size < n_replicas or self.batch_size % n_replicas:
            raise UsageError(f"--batch_size {self.batch_size} must be a multiple of the number of "
                             f"devices ({n_replicas})")
        if self.steps_per_epoch is None:
            self.steps_per_epoch = max(1, min(int(n_used * 6 / self.batch_size), 200))
        if self.noise_dir is None:
            self.noise_dir = os.path.join(self.result_dir, "training_noise")
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2 ** 31)
        for name, value in REGISTRY[self.method].derived_defaults(self).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        return self

    def network_options(self):
        """Keyword arguments of :func:`isonet.network.unet.build_unet`."""
        return dict(unet_depth=self.unet_depth, filter_base=self.filter_base,
                    convs_per_depth=self.convs_per_depth, kernel=tuple(self.kernel), pool=self.pool,
                    batch_normalization=self.batch_normalization, drop_out=self.drop_out)


#: Every refine setting (spec §1.6) with its default from :data:`isonet.commands.REFINE`; ``None`` in a
#: field means "derive it" (:meth:`RefineConfig.resolve`: ``batch_size`` = max(4, 2 x devices),
#: ``steps_per_epoch`` = min(int(6 N / batch_size), 200) with N the subtomograms used per iteration,
#: ``noise_dir`` = ``<result_dir>/training_noise``, ``seed`` = a random seed, recorded). ``explicit``
#: names the settings given on the command line, so that they win over --continue_from.
RefineConfig = make_dataclass(
    "RefineConfig",
    [(p.name, object, field(default=p.default)) for p in REFINE.params if p.name != "continue_from"]
    + [("explicit", set, field(default_factory=set, repr=False))],
    bases=(_Settings,))
RefineConfig.__module__ = __name__
RefineConfig.__doc__ = "All refine settings (names and defaults: :data:`isonet.commands.REFINE`)."


def iteration_json_path(result_dir, iteration):
    """``<result_dir>/refine_iterNN.json``."""
    return os.path.join(result_dir, f"refine_iter{iteration:02d}.json")


def save_state(path, config, iteration, history):
    """Write ``refine_iterNN.json``: settings, ``iter_count``, this iteration's losses and the history.

    Parameters
    ----------
    path : str
    config : RefineConfig
        Resolved settings.
    iteration : int
        Iteration just finished (``iter_count``).
    history : list of dict
        One entry per finished iteration: ``iteration``, ``loss`` and ``val_loss``
        (per epoch), ``noise_level``, ``seconds`` (``pairs``, ``training``, ``predicting``).
    """
    state = config.to_dict()
    state["iter_count"] = int(iteration)
    state["losses"] = list(history[-1]["loss"]) if history else []
    state["val_losses"] = list(history[-1]["val_loss"]) if history else []
    state["history"] = history
    atomic_write_text(path, json.dumps(state, indent=4, sort_keys=True) + "\n")


def load_state(path):
    """Read ``refine_iterNN.json``; returns ``(config, iter_count, history)``."""
    try:
        with open(path) as handle:
            state = json.load(handle)
    except FileNotFoundError:
        raise IsonetError(f"--continue_from {path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise IsonetError(f"--continue_from {path}: not a readable refine JSON ({exc})") from None
    if not isinstance(state, dict) or "iter_count" not in state:
        raise IsonetError(f"--continue_from {path}: no 'iter_count' (expected a refine_iterNN.json)")
    if state.get("method") is not None:
        state["method"] = REFINE["method"].canonical(state["method"], path)
    _warn_retired(state, path)
    return RefineConfig.from_dict(state), int(state["iter_count"]), list(state.get("history", []))


def _warn_retired(state, path):
    """One warning per retired setting whose saved value differs from what the run continues with."""
    method = REGISTRY.get(state.get("method"))
    fixed = dict(RETIRED_SETTINGS, refresh_batch_norm=getattr(method, "refreshes_batch_norm", None))
    if not state.get("full_input_fraction"):  # without full-input pairs their schedule changes nothing
        for name in ("full_input_start", "full_input_stop", "full_input_measured"):
            fixed.pop(name)
    elif "full_input_stop" not in state:
        state["full_input_stop"] = state.get("iterations")  # saved before that setting: every iteration
    for name, now in fixed.items():
        if name in state and now is not None and state[name] != now:
            log.warning("%s: %s %r is no longer an option (docs/quality.md); the run continues with %r",
                        path, name, state[name], now)
