"""The registry over a real store: publishing, immutability, resolution, deprecation, files."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import InvalidToolSpec, NoMatchingVersion, Registry, ToolConflict, ToolNotFound, ToolSpec
from storage import Store
from tests.conftest import tool_spec

pytestmark = pytest.mark.anyio


async def test_publishing_the_same_definition_twice_is_a_no_op(store: Store) -> None:
    registry = Registry(store)
    assert await registry.register(tool_spec("add")) is True
    assert await registry.register(tool_spec("add")) is False
    assert [s.ref for s in await registry.list_tools()] == ["add@1.0.0"]


async def test_a_published_version_cannot_change_and_the_error_names_what_differs(store: Store) -> None:
    registry = Registry(store)
    await registry.register(tool_spec("add"))
    with pytest.raises(ToolConflict, match=r"add@1\.0\.0 .*differs in: cost, timeout_s"):
        await registry.register(tool_spec("add", cost=1.0, timeout_s=5))
    assert (await registry.resolve("add@1.0.0")).cost == 0.0


async def test_a_batch_with_one_conflict_publishes_nothing(store: Store) -> None:
    registry = Registry(store)
    await registry.register(tool_spec("add"))
    with pytest.raises(ToolConflict):
        await registry.register_all([tool_spec("double"), tool_spec("add", cost=3.0)])
    assert [s.name for s in await registry.list_tools()] == ["add"]


async def test_resolution_picks_the_highest_stable_version_in_range(store: Store) -> None:
    registry = Registry(store)
    for version in ("1.0.0", "1.2.0", "1.3.0-rc.1", "2.0.0"):
        await registry.register(tool_spec("add", version))
    assert (await registry.resolve("add")).version == "2.0.0"
    assert (await registry.resolve("add@^1")).version == "1.2.0"
    assert (await registry.resolve("add@>=1.3.0-rc.1,<2")).version == "1.3.0-rc.1"
    with pytest.raises(NoMatchingVersion, match=r"versions: 2\.0\.0, 1\.3\.0-rc\.1 \(prerelease\), 1\.2\.0, 1\.0\.0"):
        await registry.resolve("add@^3")


async def test_a_deprecated_version_is_skipped_by_ranges_but_not_by_an_exact_pin(store: Store) -> None:
    registry = Registry(store)
    for version in ("1.0.0", "1.1.0"):
        await registry.register(tool_spec("add", version))
    deprecated = await registry.deprecate("add@1.1.0")
    assert deprecated.deprecated
    assert (await registry.resolve("add@^1")).version == "1.0.0"
    assert (await registry.resolve("add@1.1.0")).version == "1.1.0"
    await registry.deprecate("add@1.1.0", deprecated=False)
    assert (await registry.resolve("add@^1")).version == "1.1.0"


async def test_deprecating_needs_an_exact_version_of_a_known_tool(store: Store) -> None:
    registry = Registry(store)
    await registry.register(tool_spec("add"))
    with pytest.raises(InvalidToolSpec, match="exact version"):
        await registry.deprecate("add@^1")
    with pytest.raises(ToolNotFound, match="'ad'.*did you mean 'add'"):
        await registry.deprecate("ad@1.0.0")


async def test_a_provider_that_cannot_be_imported_is_refused_before_publishing(store: Store) -> None:
    registry = Registry(store)
    spec = ToolSpec.model_validate(
        {**tool_spec("add").model_dump(), "provider": {"type": "python", "target": "tests.tools:nope"}}
    )
    with pytest.raises(InvalidToolSpec, match="has no attribute 'nope'"):
        await registry.register(spec)
    assert await registry.list_tools() == []


async def test_a_registry_file_publishes_its_tools(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "tools.toml"
    path.write_text(
        """
[[tool]]
name = "add"
version = "1.0.0"
provider = { type = "python", target = "tests.tools:add" }
idempotent = true
input_schema = { type = "object", required = ["a", "b"] }

[[tool]]
name = "double"
version = "1.0.0"
provider = { type = "python", target = "tests.tools:double" }
"""
    )
    registry = Registry(store)
    specs = await registry.register_file(path)
    assert [s.ref for s in specs] == ["add@1.0.0", "double@1.0.0"]
    assert (await registry.resolve("double")).idempotent is False


async def test_what_this_registry_publishes_resolves_at_once_and_what_another_does_within_the_ttl(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import registry.registry as module

    here, elsewhere = Registry(store), Registry(store)  # elsewhere: another process on the same database
    await here.register(tool_spec("add"))
    assert (await here.resolve("add")).version == "1.0.0"
    await here.register(tool_spec("add", version="1.1.0"))
    assert (await here.resolve("add")).version == "1.1.0"  # its own publication: at once
    await here.deprecate("add@1.1.0")
    assert (await here.resolve("add")).version == "1.0.0"

    await elsewhere.register(tool_spec("add", version="1.2.0"))
    assert (await here.resolve("add")).version == "1.0.0"  # read less than VERSIONS_TTL_S ago
    monkeypatch.setattr(module, "VERSIONS_TTL_S", 0.0)  # as if the time had passed
    assert (await here.resolve("add")).version == "1.2.0"
    with pytest.raises(ToolNotFound):
        await here.resolve("double")
    monkeypatch.setattr(module, "VERSIONS_TTL_S", 60.0)
    await elsewhere.register(tool_spec("double"))
    assert (await here.resolve("double")).version == "1.0.0"  # a name without versions is never remembered
