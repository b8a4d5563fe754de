"""The layering CLI -> API -> experiment plug-in -> problems/models/trainer (docs/ARCHITECTURE.md).

Read statically from the AST (fast: nothing is trained or loaded), except the last tests, which ask
the plug-in interface's defaults for the sentences the API used to write itself.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "linalgformer"
FAMILIES = ("charton", "spectral", "newton")
COMMANDS = ("cmd_train", "cmd_evaluate", "cmd_predict", "cmd_generate", "cmd_analyze")
# what a command may not reach into past the API: the trainer, run directories, plug-ins, problems
BELOW_THE_API = ("linalgformer.training", "linalgformer.runs", "linalgformer.experiments",
                 "linalgformer.problems", "linalgformer.models", "linalgformer.bundled")


def tree(name: str) -> ast.Module:
    return ast.parse((PACKAGE / name).read_text(), name)


def imported_modules(node: ast.AST) -> list[str]:
    """Every module an import anywhere under ``node`` names (``from a import b``: a and a.b)."""
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            found += [alias.name for alias in sub.names]
        elif isinstance(sub, ast.ImportFrom):
            base = "linalgformer" + (f".{sub.module}" if sub.module else "") if sub.level else sub.module or ""
            found += [base] + [f"{base}.{alias.name}" for alias in sub.names]
    return found


def names_used(node: ast.AST) -> set[str]:
    """Names and attribute names referenced under ``node``."""
    return ({n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)})


def function(module: ast.Module, name: str) -> ast.FunctionDef:
    matches = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == name]
    assert matches, f"cli.py has no {name}"
    return matches[0]


def test_the_api_imports_no_problem_and_no_charton_module():
    modules = imported_modules(tree("api.py"))
    assert "linalgformer.config" in modules  # the walk reads the imports
    bad = [m for m in modules if m.startswith("linalgformer.problems") or "charton" in m]
    assert bad == [], f"api.py reaches past the plug-in interface: {bad}"


def test_the_api_names_no_family():
    """No branch on a family's name and no Charton helper: the plug-in answers for its family."""
    api = tree("api.py")
    constants = {n.value for n in ast.walk(api) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not constants & set(FAMILIES)
    assert not {name for name in names_used(api) if "charton" in name.lower()}
    assert not names_used(api) & {"accuracy_key", "check_question_shape", "dim_range", "make_problem",
                                  "join_examples"}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_commands_call_the_api(command):
    body = function(tree("cli.py"), command)
    modules = imported_modules(body)
    assert "linalgformer.api" in modules, f"{command} does not call the API"
    bad = [m for m in modules if m.startswith(BELOW_THE_API)]
    assert bad == [], f"{command} reaches past the API: {bad}"


def test_train_goes_through_the_api_not_the_training_loop():
    cli = tree("cli.py")
    train = function(cli, "cmd_train")
    assert not names_used(train) & {"train_run", "run_config_from_dict", "build_experiment"}
    assert {"fit", "run_config"} <= names_used(train)
    assert "train_run" not in names_used(cli)  # no command reaches the loop by another way
    assert "setting_names" in names_used(function(cli, "family_fields"))


def test_predict_and_evaluate_open_the_model_with_load():
    cli = tree("cli.py")
    for command in ("cmd_predict", "cmd_evaluate", "cmd_analyze"):
        used = names_used(function(cli, command))
        assert "load" in used and not used & {"Model", "resolve_model", "load_run"}, command


# ----------------------------------------------------------------------------- the plug-in defaults


def bare_experiment(family: str = "newton"):
    """An experiment with only the plug-in's required methods: what a family without the
    Charton-only abilities answers (the base class's defaults)."""
    from linalgformer.experiments.plugin import Experiment

    class Minimal(Experiment):
        def build_model(self): ...
        def sample_batch(self, rng, size): ...
        def loss(self, model, batch): ...
        def evaluate(self, model, count, seed, device, **options): ...

    return Minimal(SimpleNamespace(family=family, train=SimpleNamespace(data_file="")))


@pytest.mark.parametrize("method, sentence", [
    ("check_test_bound", "a test coefficient range (bound) is for the charton family, not spectral."),
    ("suite_problem", "suites test matrix problems (charton), not the spectral family."),
    ("check_analyzable", "analyze studies tokenized (charton) models, not the spectral family."),
])
def test_a_family_without_an_ability_refuses_it_in_the_api_s_old_words(method, sentence):
    from linalgformer.errors import UserError

    with pytest.raises(UserError) as err:
        getattr(bare_experiment("spectral"), method)()
    assert str(err.value) == sentence


def test_any_question_shape_is_asked_by_default():
    assert bare_experiment().check_question((3, 4)) is None


def test_the_api_s_accuracy_is_the_5_percent_tolerance():
    from linalgformer.api import accuracy_view

    raw = {"acc@0.05": 0.9, "acc@0.01": 0.5, "count": 4, "by_law": {"laplace": {"acc@0.05": 1.0, "count": 2}},
           "by_other": {"x": 1}}
    assert accuracy_view(raw) == {"count": 4, "accuracy": 0.9, "tolerances": {"0.05": 0.9, "0.01": 0.5},
                                  "by_law": {"laplace": {"count": 2, "accuracy": 1.0, "tolerances": {"0.05": 1.0}}}}
    assert accuracy_view({"neg_loss": -0.1, "by_kappa": {"1": 0.2}}) == {"neg_loss": -0.1}
