"""scripts/bundle_model.py writes a bundled model's read-out fields (answer views, their average, the
Newton-Schulz steps of a continuous inversion model) into its config, refused as training would
refuse them, nothing written then."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from linalgformer import checkpoint as ckpt
from linalgformer.bundled import BUNDLED_DIR
from linalgformer.errors import UserError

SCRIPT = Path(__file__).parents[1] / "scripts" / "bundle_model.py"


def bundle_script():
    spec = importlib.util.spec_from_file_location("bundle_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bundled_copy(tmp_path):
    target = tmp_path / "inverse"
    target.mkdir()
    shutil.copy2(BUNDLED_DIR / "invert-5x5-newton6" / ckpt.CONFIG, target / ckpt.CONFIG)
    return target


def test_newton_steps_and_views_are_written_into_the_config(bundled_copy):
    bundle_script().set_read_out(bundled_copy, {"newton_steps": 8, "answer_views": 4, "view_average": "median"})
    model = json.loads((bundled_copy / ckpt.CONFIG).read_text())["model"]
    assert (model["newton_steps"], model["answer_views"], model["view_average"]) == (8, 4, "median")


def test_a_value_training_refuses_is_refused_and_nothing_is_written(bundled_copy):
    before = (bundled_copy / ckpt.CONFIG).read_text()
    with pytest.raises(UserError, match="newton_steps"):
        bundle_script().set_read_out(bundled_copy, {"newton_steps": 99})
    assert (bundled_copy / ckpt.CONFIG).read_text() == before


def test_the_card_command_shows_the_read_out_flags():
    script = bundle_script()
    args = script.argparse.Namespace(answer_views=None, view_average="median", newton_steps=6)
    assert script.read_out_flags(args) == " --view-average median --newton-steps 6"
