"""Precision choice: auto never picks an emulated bf16; asking for one says it will be slow."""

import importlib
import warnings

import pytest
import torch

from linalgformer.cli import one_line_warning

train = importlib.import_module("linalgformer.runtime")  # the training loop's device and precision choices


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


@pytest.mark.parametrize("answer", [True, False])
def test_bf16_is_fast_on_a_cpu_is_onednn_s_answer(monkeypatch, answer):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: answer)
    assert train.bf16_is_fast(torch.device("cpu")) is answer


def test_bf16_is_not_fast_where_torch_cannot_say(monkeypatch):
    def missing():
        raise RuntimeError("no oneDNN in this build")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", missing)
    assert train.bf16_is_fast(torch.device("cpu")) is False


def test_cli_warnings_are_one_line():
    text = one_line_warning(UserWarning("slow here"), UserWarning, "/x/train.py", 90)
    assert text == "linalgformer: warning: slow here\n"
