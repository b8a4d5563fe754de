"""The experiment families by name, and run configs resolved against them.

A family module is loaded when a config names it (``importlib``), so that a run of one family does
not import the others' dependencies; the import-graph test reads :data:`FAMILY_MODULES` as edges.
"""

from __future__ import annotations

import dataclasses
import importlib

from linalgformer.config import RunConfig, TrainConfig, from_dict
from linalgformer.errors import UserError
from linalgformer.experiments.plugin import Experiment

FAMILY_MODULES = {
    "charton": "linalgformer.experiments.charton",
    "spectral": "linalgformer.experiments.spectral",
    "newton": "linalgformer.experiments.newton",
}
# The family whose examples are matrices written as token text (``generate``): its module also
# defines draw_examples, example_lines and write_examples (see experiments/plugin.py).
EXAMPLES_FAMILY = "charton"
# Keys a preset YAML may hold beside the run config (read by ``linalgformer.reproduce``).
PRESET_ONLY = ("title", "reproduce")
SECTION_CLASSES = {"problem": "ProblemConfig", "model": "ModelConfig"}


def family_module(family: str):
    if family not in FAMILY_MODULES:
        raise UserError(f"unknown experiment family {family!r} (known: {', '.join(FAMILY_MODULES)}).")
    return importlib.import_module(FAMILY_MODULES[family])


def run_config_from_dict(data: dict) -> RunConfig:
    """Resolve a nested dict (YAML preset, overrides applied) into a typed RunConfig."""
    if not isinstance(data, dict):
        raise UserError("a run config must be a mapping with family, problem, model and train.")
    data = {k: v for k, v in data.items() if k not in PRESET_ONLY}
    unknown = sorted(set(data) - {"family", "problem", "model", "train"})
    if unknown:
        raise UserError(f"unknown config section {unknown[0]!r} (known: family, problem, model, train).")
    family = data.get("family", "charton")
    module = family_module(family)
    for section in ("problem", "model"):
        check_family_keys(data.get(section) or {}, section, family)
    return RunConfig(
        family=family,
        problem=from_dict(module.ProblemConfig, data.get("problem") or {}, "problem"),
        model=from_dict(module.ModelConfig, data.get("model") or {}, "model"),
        train=from_dict(TrainConfig, data.get("train") or {}, "train"),
    )


def check_family_keys(values: dict, section: str, family: str) -> None:
    """A ``section`` whose keys are not ``family``'s but all another family's is refused as that:
    a wrong ``family`` (or ``--family``), not an unknown key."""
    if not isinstance(values, dict):
        return
    keys = lambda name: {f.name for f in dataclasses.fields(getattr(family_module(name), SECTION_CLASSES[section]))}  # noqa: E731
    unknown = sorted(set(values) - keys(family))
    if not unknown:
        return  # the other families' modules are loaded only to explain an unknown key
    owners = [name for name in FAMILY_MODULES if name != family and set(values) <= keys(name)]
    if owners:
        raise UserError(f"{section}.{unknown[0]} is a key of the {owners[0]} family, not of {family}: "
                        f"is family (or --family) right?")


def build_experiment(config: RunConfig) -> Experiment:
    return family_module(config.family).Experiment(config)


def config_fields(family: str) -> set[str]:
    """"section.key" of every setting the family's run config has (``train`` refuses a flag that
    sets another)."""
    module = family_module(family)
    sections = {"problem": module.ProblemConfig, "model": module.ModelConfig, "train": TrainConfig}
    return {f"{name}.{f.name}" for name, cls in sections.items() for f in dataclasses.fields(cls)}
