"""Curricula of the Charton family: stages by step, exact resume across a stage change."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment
from linalgformer.problems.charton import CurriculumStage
from tests.helpers import assert_resumes_exactly, tiny_config

STAGES = [CurriculumStage(step=0, min_dim=2, max_dim=2, bound=2.0), CurriculumStage(step=7, min_dim=2, max_dim=3)]


def curriculum_config(**train):
    config = tiny_config(**train)
    problem = dataclasses.replace(config.problem, dim=3, curriculum=list(STAGES))
    return dataclasses.replace(config, problem=problem)


def test_stages_follow_the_step():
    exp = build_experiment(curriculum_config())
    rng = np.random.default_rng(0)
    exp.set_step(0)
    first = exp.train_problem.sample(rng, 64)
    assert set(first.dims) == {2} and max(np.abs(m).max() for m in first.inputs) <= 2.0
    exp.set_step(7)
    later = exp.train_problem.sample(rng, 256)
    assert set(later.dims) == {2, 3} and max(np.abs(m).max() for m in later.inputs) > 2.0
    # evaluation is on the problem itself (3x3, +-10), whatever the stage
    assert exp.problem.sampling.min_dim == 3 and exp.test_problems()[0][1].sampling.max_dim == 3


def test_before_the_first_stage_the_problem_itself_is_trained():
    config = curriculum_config()
    config = dataclasses.replace(config, problem=dataclasses.replace(
        config.problem, curriculum=[CurriculumStage(step=5, max_dim=2, min_dim=2)]))
    exp = build_experiment(config)
    exp.set_step(4)
    assert exp.train_problem is exp.problem
    exp.set_step(5)
    assert exp.train_problem.sampling.max_dim == 2


def test_a_curriculum_resumes_exactly(tmp_path):
    assert_resumes_exactly(curriculum_config, tmp_path, steps=14, cut=5)


@pytest.mark.parametrize("stages, message", [
    ([CurriculumStage(step=0), CurriculumStage(step=0)], "distinct steps"),
    ([CurriculumStage(step=0, min_dim=4, max_dim=2)], "min_dim"),
])
def test_bad_stages_are_refused_in_one_sentence(stages, message):
    """(A negative step is refused where the stage is built: tests/test_config_validation.py.)"""
    config = curriculum_config()
    config = dataclasses.replace(config, problem=dataclasses.replace(config.problem, curriculum=stages))
    with pytest.raises(UserError, match=message):
        build_experiment(config)
