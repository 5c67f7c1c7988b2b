"""What a plugin author imports: ``from harness.api import hookimpl, GeneratedTask, Trait, ...``.

Everything a task, trait or decomposer plugin needs is here, and only here: the hook marker, the
three contracts (tasks, traits, decomposers) with their helpers, the parameter convention, the
errors a plugin may raise, and the conformance checks a plugin's own tests run. The built-in
plugins (``harness_plugins``) and both scaffolds (``harness new-task``, ``harness new-trait``)
import from this module alone; the rest of ``harness`` is the harness's own business and may move.
"""

from harness.api.decomposer import Decomposer, as_matrix, check_n_components, component_limit, components_to_keep
from harness.api.filetasks import FileTask, FileTaskOptions, read_rows
from harness.api.hookspecs import hookimpl
from harness.api.params import Parameterised
from harness.api.plugins import Catalog, collect, make_plugin_manager
from harness.api.rotation import promax, varimax
from harness.api.samples import NO_ANSWER, answered, label_index, output_length, predicted_index
from harness.api.tasks import (
    Example,
    GeneratedTask,
    Split,
    Task,
    TaskOptions,
    classification_example,
    content_share,
    first_match,
    generation_example,
)
from harness.api.tokens import completion_nll, pad_batch, scored_pair, tokenize_pairs
from harness.api.traits import (
    BehaviourData,
    BehaviourTrait,
    PairTrait,
    SourceData,
    SourceTrait,
    TargetData,
    Trait,
)
from harness.errors import DataError, HarnessError, PluginError

# The conformance checks run lm-eval, so they live with the authoring tools (harness.authoring) and
# load only when a plugin's tests ask for one; importing harness.api stays light.
_CHECKS = ("check_task", "check_trait", "check_decomposer")

__all__ = [
    "hookimpl",
    # tasks
    "Task", "GeneratedTask", "TaskOptions", "Example", "Split", "classification_example", "generation_example",
    "first_match", "content_share", "FileTask", "FileTaskOptions", "read_rows",
    # traits
    "SourceTrait", "PairTrait", "BehaviourTrait", "Trait", "SourceData", "TargetData", "BehaviourData",
    # examples as the tokens lm-eval scores (what training reads; a perplexity trait reads them too)
    "scored_pair", "tokenize_pairs", "pad_batch", "completion_nll",
    # per-sample records (what behaviour traits read)
    "NO_ANSWER", "label_index", "predicted_index", "answered", "output_length",
    # decomposers
    "Decomposer", "as_matrix", "check_n_components", "component_limit", "components_to_keep", "varimax", "promax",
    # shared
    "Parameterised", "DataError", "PluginError", "HarnessError",
    # testing a plugin
    "make_plugin_manager", "collect", "Catalog", *_CHECKS,
]


def __getattr__(name: str):
    if name in _CHECKS:
        from harness.authoring import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module 'harness.api' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
