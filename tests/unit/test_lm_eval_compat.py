"""The lm-eval compat module: each accessor works with the installed lm-eval, and says which name
and which lm-eval when the name is gone. vLLM is not installed here: the LoRA check runs on dummies."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import lm_eval
import lm_eval.evaluator
import lm_eval.tasks._yaml_loader
import pytest
from packaging.requirements import Requirement

from harness import lm_eval_compat
from harness.stages import evaluate
from harness_plugins.tasks.sst2 import SST2

INSTALLED = importlib.metadata.version("lm-eval")
TOXIGEN = Path(lm_eval.__file__).parent / "tasks" / "toxigen" / "toxigen.yaml"


def assert_names(err, name):
    message = str(err.value)
    assert f"transfer-harness needs {name}, which lm-eval {INSTALLED} does not have" in message
    assert "install lm-eval>=0.4.13,<0.5 (pyproject.toml)" in message


def test_the_supported_range_is_pyprojects_and_holds_the_installed_lm_eval():
    declared = [Requirement(r) for r in importlib.metadata.requires("transfer-harness")]
    lm_eval_req = next(r for r in declared if r.name == "lm-eval")
    supported = Requirement(lm_eval_compat.SUPPORTED)
    assert supported.specifier == lm_eval_req.specifier
    assert supported.specifier.contains(INSTALLED)
    assert lm_eval_compat.installed_version() == INSTALLED


def test_load_yaml_is_lm_evals_loader():
    assert lm_eval_compat.load_yaml(TOXIGEN) == lm_eval.tasks._yaml_loader.load_yaml(TOXIGEN)
    assert callable(lm_eval_compat.load_yaml(TOXIGEN)["doc_to_target"])  # `!function` resolved


def test_load_yaml_names_what_is_gone(monkeypatch):
    monkeypatch.delattr(lm_eval.tasks._yaml_loader, "load_yaml")
    with pytest.raises(RuntimeError) as err:
        lm_eval_compat.load_yaml(TOXIGEN)
    assert_names(err, "lm_eval.tasks._yaml_loader.load_yaml")
    # The file tasks that reuse lm-eval's prompts read their YAML through it.
    with pytest.raises(RuntimeError) as err:
        SST2().base_config()
    assert_names(err, "lm_eval.tasks._yaml_loader.load_yaml")


def test_load_yaml_names_a_module_that_is_gone(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval.tasks._yaml_loader", None)  # its import now fails
    with pytest.raises(RuntimeError) as err:
        lm_eval_compat.load_yaml(TOXIGEN)
    assert_names(err, "lm_eval.tasks._yaml_loader.load_yaml")


def test_no_environment_report_stubs_the_reports_for_the_block():
    saved = lm_eval.evaluator.add_env_info, lm_eval.evaluator.get_git_commit_hash
    results = {}
    with lm_eval_compat.no_environment_report():
        assert lm_eval.evaluator.add_env_info(results) is None and results == {}
        assert lm_eval.evaluator.get_git_commit_hash() is None
        assert lm_eval.evaluator.add_env_info is not saved[0]
    assert (lm_eval.evaluator.add_env_info, lm_eval.evaluator.get_git_commit_hash) == saved
    assert evaluate.no_environment_report is lm_eval_compat.no_environment_report  # what Evaluator uses


@pytest.mark.parametrize("attribute", ["add_env_info", "get_git_commit_hash"])
def test_no_environment_report_names_what_is_gone(monkeypatch, attribute):
    monkeypatch.delattr(lm_eval.evaluator, attribute)
    with pytest.raises(RuntimeError) as err:
        with lm_eval_compat.no_environment_report():
            pass
    assert_names(err, f"lm_eval.evaluator.{attribute}")


class FakeVLLM:
    """What VLLMEvaluator needs of lm-eval's VLLM: the attribute its constructor sets."""

    def __init__(self):
        self.lora_request = None


def test_set_lora_request_switches_adapters_through_the_attribute():
    host = evaluate.VLLMEvaluator.__new__(evaluate.VLLMEvaluator)  # no vLLM: skip the constructor
    host.lm, host._ids, host._request = FakeVLLM(), {}, lambda *args: args
    host.activate("a", "/adapters/a")
    host.activate("b", "/adapters/b")
    host.activate("a", "/adapters/a")
    assert host.lm.lora_request == ("a", 1, "/adapters/a")
    host.activate(None)
    assert host.lm.lora_request is None


def test_set_lora_request_names_what_is_gone():
    with pytest.raises(RuntimeError) as err:
        lm_eval_compat.set_lora_request(object(), None)
    assert_names(err, "lm_eval.models.vllm_causallms.VLLM.lora_request")
    host = evaluate.VLLMEvaluator.__new__(evaluate.VLLMEvaluator)
    host.lm, host._ids = object(), {}
    with pytest.raises(RuntimeError) as err:
        host.activate(None)
    assert_names(err, "lm_eval.models.vllm_causallms.VLLM.lora_request")
