"""The public surface of each package is a deliberate decision: this pins it."""

import importlib

import pytest

EXPECTED = {
    "storage": [
        "Database", "Durability", "GATE_DECIDED", "GATE_EXPIRED", "GATE_PENDING", "GATE_TIMED_OUT", "GateNotFound",
        "GateRecord", "GateStore", "NewGate", "NewRun", "NoBudget", "NotFound", "RunChanged", "RunNotFound",
        "RunRecord", "RunUpdate", "STEP_CANCELLED", "STEP_COMPLETED", "STEP_FAILED", "STEP_STARTED", "STEP_WAITING",
        "StepRecord", "StepWrite", "StorageError", "Store", "StoredTool", "UnsupportedDatabase", "WriteFailed", "dumps",
        "loads", "parse_database_url",
    ],
    "registry": [
        "InvalidReference", "InvalidToolSpec", "NO_RETRY", "NoMatchingVersion", "PermanentError", "PythonProvider",
        "Registry", "RegistryError", "RegistryFile", "RegistryFileError", "RetryPolicy", "ToolConflict",
        "ToolNotFound", "ToolRef", "ToolSpec", "Version", "VersionRange", "WorkflowNotFound", "WorkflowSpec",
        "load_registry_file", "make_invoker", "parse_ref", "parse_registry_text", "resolve_version", "staged",
    ],
    "patterns": [
        "ERROR_TYPES", "KINDS", "RUN_STATUSES", "SETTLED", "AnyStep", "ChainStep", "ContractViolation", "Engine",
        "ErrorType", "FanOutStep", "InvalidStep", "LimitExceeded", "Limits", "MapReduceStep", "NeedsAttention",
        "PatternError", "Plan", "RefineStep", "RouteStep", "RunCancelled", "RunOptions", "Step", "StepFailed",
        "ToolStep", "UnknownTool", "new_run_id", "parse_step",
    ],
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_each_package_exports_exactly_its_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == EXPECTED[package]
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.{name} is listed but missing"


def test_the_error_types_and_run_statuses_are_the_public_contracts() -> None:
    patterns = importlib.import_module("patterns")
    assert patterns.ERROR_TYPES == (
        "invalid_input", "unknown_tool", "contract_violation", "limit_exceeded", "tool_failed", "timeout",
        "gate_rejected", "cancelled", "internal", "circuit_open",
    )  # fmt: skip
    assert patterns.RUN_STATUSES == (
        "pending", "running", "waiting", "succeeded", "partial", "failed", "rejected", "cancelled", "timed_out",
        "needs_attention",
    )  # fmt: skip
