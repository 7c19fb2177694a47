"""The tool registry: immutable ``name@version`` specs in the store, resolved from references."""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Set
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from registry.errors import (
    InvalidToolSpec,
    NoMatchingVersion,
    RegistryError,
    ToolConflict,
    ToolNotFound,
    WorkflowNotFound,
)
from registry.files import RegistryFile, load_registry_file
from registry.models import McpProvider, PythonProvider, ToolSpec, trust_schemas
from registry.providers import Invoker, load_target, make_invoker
from registry.resolve import ToolRef, parse_ref, resolve_version
from registry.schemacheck import SchemaCheck
from registry.semver import Version
from registry.servers import ServerSpec
from registry.triggers import TriggerSpec
from registry.workflows import WorkflowSpec
from storage import StoredTool
from storage.threads import WorkerThreads

if TYPE_CHECKING:
    from storage import Store

SYNC_TOOL_THREADS = 8
VERSIONS_TTL_S = 1.0  # how long resolve trusts the versions it read of a name
MAX_CACHED_NAMES = 4096


def _spec(stored: StoredTool) -> ToolSpec:
    return ToolSpec.model_validate({**stored.definition, "deprecated": stored.deprecated})


def _workflow(stored: StoredTool) -> WorkflowSpec:
    return WorkflowSpec.model_validate({**stored.definition, "deprecated": stored.deprecated})


_STAGED: contextvars.ContextVar[tuple[WorkflowSpec, ...]] = contextvars.ContextVar("staged_workflows", default=())
"""Workflows of a registry file being checked before it is published (``register_file``)."""


_STAGED_TOOLS: contextvars.ContextVar[tuple[ToolSpec, ...]] = contextvars.ContextVar("staged_tools", default=())


@contextmanager
def staged(workflows: Iterable[WorkflowSpec], tools: Iterable[ToolSpec] = ()) -> Iterator[None]:
    """While the block runs, ``workflows`` and ``tools`` resolve in this task as if published beside what is (a
    registry file's workflows are checked together, may delegate to each other and use the file's tools); other
    tasks do not see them."""
    token = _STAGED.set(tuple(workflows))
    tools_token = _STAGED_TOOLS.set(tuple(tools))
    try:
        yield
    finally:
        _STAGED_TOOLS.reset(tools_token)
        _STAGED.reset(token)


class Registry:
    """Tool specs over a store. Published versions are immutable, so exact lookups are cached forever."""

    def __init__(self, store: Store, *, sync_threads: int = SYNC_TOOL_THREADS) -> None:
        """``sync_threads``: how many calls of sync python tools run at once (each in a worker thread)."""
        self._store = store
        self._threads = WorkerThreads(sync_threads, name="podium-tool")
        self._specs: dict[tuple[str, str], ToolSpec] = {}
        self._invokers: dict[tuple[str, str], Invoker] = {}
        self._validators: dict[tuple[str, str, str], SchemaCheck | None] = {}
        self._versions: dict[tuple[str, str], tuple[float, list[StoredTool]]] = {}
        self._workflows: dict[tuple[str, str], WorkflowSpec] = {}
        self._servers: dict[str, tuple[float, ServerSpec]] = {}
        self._triggers: tuple[float, list[TriggerSpec]] | None = None

    async def register(self, spec: ToolSpec, *, check_provider: bool = True) -> bool:
        """Publish ``spec``. Returns False if the identical definition was already there.

        Raises:
            ToolConflict: the same name@version exists with another definition (the message names the fields).
            InvalidToolSpec: the provider cannot be loaded (with ``check_provider``).
        """
        if check_provider:
            await self._check_provider(spec, set())
        await self._check_conflict(spec)
        stored, created = await self._store.tools.put(
            spec.name, spec.version, spec.definition(), spec.definition_hash(), spec.deprecated
        )
        self._versions.pop(("tool", spec.name), None)
        if not created and stored.definition_hash != spec.definition_hash():
            raise ToolConflict(spec.name, spec.version, spec.differences(_spec(stored)))
        return created

    async def _check_provider(self, spec: ToolSpec, servers: Set[str]) -> None:
        """A python target must import; an mcp tool's server must be declared (in ``servers`` or published)."""
        provider = spec.provider
        if isinstance(provider, PythonProvider):
            load_target(provider.target)
        elif isinstance(provider, McpProvider) and provider.server not in servers:
            if await self._store.servers.get(provider.server) is None:
                known = ", ".join(s["name"] for s in await self._store.servers.all()) or "none is registered"
                raise InvalidToolSpec(
                    f"tool {spec.ref} is served by MCP server {provider.server!r}, which is not declared: add a "
                    f"[[server]] table for it (servers: {known}), or import it with `podium tools import-mcp`"
                )

    async def register_server(self, spec: ServerSpec) -> bool:
        """Publish (or replace) how a downstream MCP server is reached. Returns whether anything changed."""
        changed = await self._store.servers.put(spec.name, spec.definition(), spec.definition_hash())
        self._servers.pop(spec.name, None)
        return changed

    async def server(self, name: str) -> ServerSpec:
        """A downstream MCP server by name (cached for ``VERSIONS_TTL_S``).

        Raises:
            InvalidToolSpec: no server has that name.
        """
        now = time.monotonic()
        cached = self._servers.get(name)
        if cached is not None and now - cached[0] < VERSIONS_TTL_S:
            return cached[1]
        definition = await self._store.servers.get(name)
        if definition is None:
            raise InvalidToolSpec(f"no MCP server named {name!r} is registered")
        spec = ServerSpec.model_validate(definition)
        self._servers[name] = (now, spec)
        return spec

    async def list_servers(self) -> list[ServerSpec]:
        return [ServerSpec.model_validate(d) for d in await self._store.servers.all()]

    async def _check_conflict(self, spec: ToolSpec) -> None:
        stored = await self._store.tools.get(spec.name, spec.version)
        if stored is not None and stored.definition_hash != spec.definition_hash():
            raise ToolConflict(spec.name, spec.version, spec.differences(_spec(stored)))

    async def register_all(self, specs: Iterable[ToolSpec], *, check_provider: bool = True) -> list[bool]:
        """Publish several specs, all or nothing as far as conflicts go: every spec is checked before any is added.
        Versions already published with the same definition are left as they are (one read for all of them)."""
        return await self._register_all(list(specs), await self._store.tools.all(), check_provider)

    async def register_file(
        self,
        path: str | os.PathLike[str] | RegistryFile,
        *,
        check_provider: bool = True,
        check_workflow: Callable[[WorkflowSpec], Awaitable[None]] | None = None,
    ) -> list[ToolSpec]:
        """Publish the tools and workflows of a registry file (TOML, YAML or JSON), or of one already loaded.
        Returns the tool specs it holds.

        The schemas of versions already published are not checked again (they were when they were published).
        Workflows are published after the tools (they use them), each once ``check_workflow`` (the engine's
        planning: the step language is not the registry's) has accepted it; a workflow version published before
        with another definition fails the file before any workflow is published."""
        published = await self._store.tools.all()
        trust_schemas(
            schema
            for tool in published
            for schema in (tool.definition.get("input_schema"), tool.definition.get("output_schema"))
        )
        loaded = path if isinstance(path, RegistryFile) else load_registry_file(path)
        for server in loaded.servers:  # first: the file's tools may be served by them
            await self.register_server(server)
        await self._register_all(list(loaded.tools), published, check_provider, {s.name for s in loaded.servers})
        for workflow in loaded.workflows:
            stored = await self._store.workflows.get(workflow.name, workflow.version)
            if stored is not None and stored.definition_hash != workflow.definition_hash():
                raise ToolConflict(workflow.name, workflow.version, workflow.differences(_workflow(stored)))
        if check_workflow is not None:
            # the file's workflows may delegate to each other: while they are checked, they resolve (in this task
            # only) as if published
            with staged(loaded.workflows):  # its tools are published already
                for workflow in loaded.workflows:
                    await check_workflow(workflow)
        for workflow in loaded.workflows:
            await self.register_workflow(workflow)
        for trigger in loaded.triggers:
            await self.register_trigger(trigger)
        return list(loaded.tools)

    # -- triggers --------------------------------------------------------------------------------------------------

    async def register_trigger(self, spec: TriggerSpec) -> bool:
        """Publish (or replace) an event trigger; its workflow must resolve. Returns whether anything changed."""
        try:
            await self.workflow(spec.workflow)
        except RegistryError as exc:
            raise InvalidToolSpec(f"trigger {spec.name!r} starts workflow {spec.workflow!r}: {exc.message}") from None
        self._triggers = None
        return await self._store.triggers.put(spec.name, spec.definition(), spec.definition_hash(), spec.enabled)

    async def triggers(self) -> list[TriggerSpec]:
        """Every trigger, by name, with whether it is enabled: read at most once per ``VERSIONS_TTL_S`` (every
        event asks); what this registry adds or toggles is seen at once, what another process does within it."""
        now = time.monotonic()
        if self._triggers is not None and now - self._triggers[0] < VERSIONS_TTL_S:
            return self._triggers[1]
        found = [
            TriggerSpec.model_validate({**definition, "enabled": enabled})
            for definition, enabled in await self._store.triggers.all()
        ]
        self._triggers = (now, found)
        return found

    async def enable_trigger(self, name: str, enabled: bool = True) -> None:
        """Raises InvalidToolSpec if there is no trigger ``name``."""
        self._triggers = None
        if not await self._store.triggers.set_enabled(name, enabled):
            known = ", ".join(t.name for t in await self.triggers()) or "none is registered"
            raise InvalidToolSpec(f"no trigger named {name!r} (triggers: {known})")

    async def _register_all(
        self, specs: list[ToolSpec], published: list[StoredTool], check_provider: bool, servers: Set[str] = frozenset()
    ) -> list[bool]:
        stored = {(t.name, t.version): t for t in published}
        for spec in specs:
            if check_provider:
                await self._check_provider(spec, servers)
            earlier = stored.get((spec.name, spec.version))
            if earlier is not None and earlier.definition_hash != spec.definition_hash():
                raise ToolConflict(spec.name, spec.version, spec.differences(_spec(earlier)))
        created = []
        for spec in specs:
            known = (spec.name, spec.version) in stored
            created.append(False if known else await self.register(spec, check_provider=False))
        return created

    async def get(self, name: str, version: str) -> ToolSpec:
        """The spec of an exact ``name@version`` (cached: published versions never change)."""
        key = (name, version)
        spec = self._specs.get(key)
        if spec is None:
            for staged_spec in _STAGED_TOOLS.get():
                if (staged_spec.name, staged_spec.version) == key:
                    return staged_spec
            stored = await self._store.tools.get(name, version)
            if stored is None:
                await self._not_found(name)
                stored_versions = [s.version for s in await self._store.tools.versions(name)]
                known = sorted(stored_versions, key=lambda v: Version.parse(v).sort_key(), reverse=True)
                raise NoMatchingVersion(name, version, known)
            spec = _spec(stored)
            self._specs[key] = spec
        return spec

    async def _not_found(self, name: str) -> None:
        known = await self._store.tools.names()
        if name not in known:
            raise ToolNotFound(name, known)

    async def resolve(self, ref: str | ToolRef) -> ToolSpec:
        """The spec a reference resolves to now: the highest matching version, skipping prereleases and
        deprecated versions unless the reference names them.

        Raises:
            InvalidReference, ToolNotFound, NoMatchingVersion
        """
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        versions = await self._recent_versions(parsed.name)
        staged = _STAGED_TOOLS.get()
        if staged:
            candidates = {t.version: t for t in staged if t.name == parsed.name}
            if candidates:
                known = {v.version: v.deprecated for v in versions}
                new = [(v, False) for v in candidates if v not in known]
                version = resolve_version(parsed, [*known.items(), *new])
                if version not in known:
                    return candidates[version]
        if not versions:
            await self._not_found(parsed.name)
        version = resolve_version(parsed, [(v.version, v.deprecated) for v in versions])
        key = (parsed.name, version)
        if key not in self._specs:
            self._specs[key] = _spec(next(v for v in versions if v.version == version))
        return self._specs[key]

    async def _recent_versions(self, name: str, kind: str = "tool") -> list[StoredTool]:
        """The stored versions of the tool (or workflow) ``name``, read at most ``VERSIONS_TTL_S`` ago (a run
        resolves every tool it names, and most runs name the same few). What this registry publishes or deprecates
        is seen at once; what another process does, within ``VERSIONS_TTL_S``. A name with no version is never
        remembered."""
        now = time.monotonic()
        key = (kind, name)
        cached = self._versions.get(key)
        if cached is not None and now - cached[0] < VERSIONS_TTL_S:
            return cached[1]
        table = self._store.tools if kind == "tool" else self._store.workflows
        versions = await table.versions(name)
        if versions:
            if len(self._versions) >= MAX_CACHED_NAMES:
                self._versions.clear()
            self._versions[key] = (now, versions)
        return versions

    async def versions(self, name: str) -> list[ToolSpec]:
        """Every registered version of ``name``, highest first."""
        stored = await self._store.tools.versions(name)
        if not stored:
            await self._not_found(name)
        return sorted((_spec(s) for s in stored), key=lambda s: s.parsed_version.sort_key(), reverse=True)

    # -- workflows ---------------------------------------------------------------------------------------------

    async def register_workflow(self, spec: WorkflowSpec) -> bool:
        """Publish a workflow version (its step tree checked by the caller: the step language is the engine's).
        Returns False if the identical definition was already there.

        Raises:
            ToolConflict: the same name@version exists with another definition (the message names the fields).
        """
        stored, created = await self._store.workflows.put(
            spec.name, spec.version, spec.definition(), spec.definition_hash(), spec.deprecated
        )
        self._versions.pop(("workflow", spec.name), None)
        if not created and stored.definition_hash != spec.definition_hash():
            raise ToolConflict(spec.name, spec.version, spec.differences(_workflow(stored)))
        return created

    async def workflow(self, ref: str) -> WorkflowSpec:
        """The workflow version a reference (``name``, ``name@^1``, ...) resolves to now.

        Raises:
            InvalidReference, WorkflowNotFound, NoMatchingVersion
        """
        parsed = parse_ref(ref)
        versions = await self._recent_versions(parsed.name, "workflow")
        staged = {w.version: w for w in _STAGED.get() if w.name == parsed.name}
        if not versions and not staged:
            raise WorkflowNotFound(parsed.name, await self._store.workflows.names())
        known = [(v.version, v.deprecated) for v in versions]
        version = resolve_version(parsed, [*known, *((v, False) for v in staged if v not in dict(known))])
        if version in staged:
            return staged[version]
        key = (parsed.name, version)
        if key not in self._workflows:
            self._workflows[key] = _workflow(next(v for v in versions if v.version == version))
        return self._workflows[key]

    async def workflow_versions(self, name: str) -> list[WorkflowSpec]:
        """Every published version of the workflow ``name``, highest first."""
        stored = await self._store.workflows.versions(name)
        if not stored:
            raise WorkflowNotFound(name, await self._store.workflows.names())
        return sorted((_workflow(s) for s in stored), key=lambda s: s.parsed_version.sort_key(), reverse=True)

    async def list_workflows(self) -> list[WorkflowSpec]:
        """Every published workflow version, by name, oldest first."""
        return [_workflow(s) for s in await self._store.workflows.all()]

    async def list_tools(self) -> list[ToolSpec]:
        return [_spec(s) for s in await self._store.tools.all()]

    async def deprecate(self, ref: str, deprecated: bool = True) -> ToolSpec:
        """Mark an exact ``name@version`` deprecated (or not): ranges stop choosing it; exact pins still work."""
        parsed = parse_ref(ref)
        if not parsed.spec.is_exact:
            raise InvalidToolSpec(f"deprecate an exact version (name@1.2.3), not {ref!r}")
        versions = await self._store.tools.versions(parsed.name)
        if not versions:
            await self._not_found(parsed.name)
        version = resolve_version(parsed, [(v.version, v.deprecated) for v in versions])
        stored = await self._store.tools.set_deprecated(parsed.name, version, deprecated)
        self._versions.pop(("tool", parsed.name), None)
        assert stored is not None, "the version was just resolved from the store"
        return _spec(stored)

    def invoker(self, spec: ToolSpec) -> Invoker:
        """The cached callable for ``spec``'s provider."""
        key = (spec.name, spec.version)
        invoker = self._invokers.get(key)
        if invoker is None:
            invoker = self._invokers[key] = make_invoker(spec, self._threads)
        return invoker

    def validator(self, spec: ToolSpec, which: Literal["input", "output"]) -> SchemaCheck | None:
        """The compiled check of ``spec``'s input or output schema (None when it has none), built once."""
        key = (spec.name, spec.version, which)
        if key not in self._validators:
            schema = spec.input_schema if which == "input" else spec.output_schema
            self._validators[key] = SchemaCheck.of(schema) if schema else None
        return self._validators[key]
