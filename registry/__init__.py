"""The tool registry: immutable, semver-versioned tool specs, references, registry files and providers."""

from registry.errors import (
    InvalidReference,
    InvalidToolSpec,
    NoMatchingVersion,
    RegistryError,
    RegistryFileError,
    ToolConflict,
    ToolNotFound,
    WorkflowNotFound,
)
from registry.files import RegistryFile, load_registry_file, parse_registry_text
from registry.models import NO_RETRY, PythonProvider, RetryPolicy, ToolSpec
from registry.providers import PermanentError, make_invoker
from registry.registry import Registry, staged
from registry.resolve import ToolRef, parse_ref, resolve_version
from registry.semver import Version, VersionRange
from registry.workflows import WorkflowSpec

__all__ = [
    "InvalidReference",
    "InvalidToolSpec",
    "NO_RETRY",
    "NoMatchingVersion",
    "PermanentError",
    "PythonProvider",
    "Registry",
    "RegistryError",
    "RegistryFile",
    "RegistryFileError",
    "RetryPolicy",
    "ToolConflict",
    "ToolNotFound",
    "ToolRef",
    "ToolSpec",
    "Version",
    "VersionRange",
    "WorkflowNotFound",
    "WorkflowSpec",
    "load_registry_file",
    "make_invoker",
    "parse_ref",
    "parse_registry_text",
    "resolve_version",
    "staged",
]
