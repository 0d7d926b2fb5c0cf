"""Which step of `make test` runs a test: ``pytest_step_only`` marks the tests that run in the pytest step and are
skipped by ``ansible-test units``, which gives a collection's unit tests ansible-core's module_utils alone (no
Templar, and its ansible-playbook cannot start), or that are too heavy to run twice (a whole host's package files
read)."""
import pytest

try:
    import ansible.parsing.dataloader  # noqa: F401  pylint: disable=unused-import
    UNDER_ANSIBLE_TEST_UNITS = False
except ImportError:
    UNDER_ANSIBLE_TEST_UNITS = True

pytest_step_only = pytest.mark.skipif(UNDER_ANSIBLE_TEST_UNITS, reason="run by the pytest step (ansible-test units "
                                      "limits ansible-core to its module_utils)")
