"""The conformance kit: checks plugin authors run in their own test suites.

::

    from harness.testing import check_model, check_task, conformance_tests

    test_conformance = conformance_tests("my-harness-plugin")  # every task and model it registers

    def test_my_task_with_other_settings():
        check_task(MyTask(length=10))

Each check raises ``AssertionError`` with a message naming the task or model and what is wrong;
what a plugin written for an older minor API version may lack is a ``ConformanceWarning``.
Importing this package does not import torch; the checks do, when they run.
"""

from harness.testing.common import ConformanceWarning
from harness.testing.models import check_model, check_trains_across_seeds
from harness.testing.reference import REFERENCE_MODEL
from harness.testing.suite import Case, check_import_is_light, conformance_cases, conformance_tests
from harness.testing.tasks import check_task

__all__ = [
    "REFERENCE_MODEL",
    "Case",
    "ConformanceWarning",
    "check_import_is_light",
    "check_model",
    "check_task",
    "check_trains_across_seeds",
    "conformance_cases",
    "conformance_tests",
]
