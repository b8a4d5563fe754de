"""Precision choice: auto never picks an emulated bf16; asking for one says it will be slow."""

import warnings

import pytest
import torch

from linalgformer import train
from linalgformer.cli import one_line_warning


def test_auto_is_fp32_on_cpu_whatever_the_cpu(monkeypatch):
    for fast in (True, False):
        monkeypatch.setattr(train, "bf16_is_fast", lambda device, fast=fast: fast)
        assert train.autocast_dtype("auto", torch.device("cpu")) is None


def test_bf16_without_native_support_warns_but_runs(monkeypatch):
    monkeypatch.setattr(train, "bf16_is_fast", lambda device: False)
    with pytest.warns(UserWarning, match="without native bf16"):
        assert train.autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    monkeypatch.setattr(train, "bf16_is_fast", lambda device: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train.autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16


def test_bf16_is_fast_answers_a_bool_on_this_cpu():
    assert isinstance(train.bf16_is_fast(torch.device("cpu")), bool)


def test_cli_warnings_are_one_line():
    text = one_line_warning(UserWarning("slow here"), UserWarning, "/x/train.py", 90)
    assert text == "linalgformer: warning: slow here\n"
