from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry.errors import RegistryError, RegistryFileError
from registry.files import RegistryFile, WorkflowSpec, load_registry_file, parse_registry_text
from registry.models import PythonProvider

DESIGN_TOML = """\
[[tool]]
name = "extract-invoice"
version = "1.0.0"
description = "Extract vendor, amount and line items from invoice text"
provider = { type = "python", target = "examples.invoice:extract" }
idempotent = true
cost = 0.01
timeout_s = 30
input_schema = { type = "object", required = ["text"], properties = { text = { type = "string" } } }
output_schema = { type = "object", required = ["vendor", "total"] }
"""

MCP_TOOL_TOML = """
[[tool]]
name = "read-file"
version = "1.0.0"
provider = { type = "mcp", command = ["npx", "-y", "some-mcp-server"], tool = "read_file" }
"""

TOOL: dict[str, Any] = {
    "name": "extract-invoice",
    "version": "1.0.0",
    "description": "Extract vendor, amount and line items from invoice text",
    "provider": {"type": "python", "target": "examples.invoice:extract"},
    "idempotent": True,
    "cost": 0.01,
    "timeout_s": 30,
    "input_schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
    "output_schema": {"type": "object", "required": ["vendor", "total"]},
}

WORKFLOW: dict[str, Any] = {
    "name": "invoice-pipeline",
    "version": "0.1.0-beta.1",
    "description": "Extract then check",
    "input_schema": {"type": "object", "required": ["text"]},
    "step": {"chain": [{"tool": "extract-invoice@^1"}, {"tool": "check-invoice"}]},
}


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def load_error(tmp_path: Path, name: str, content: str) -> str:
    path = write(tmp_path, name, content)
    with pytest.raises(RegistryFileError) as info:
        load_registry_file(path)
    assert info.value.path == str(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "Traceback" not in message
    return message.removeprefix(f"{path}: ")


def json_error(data: object) -> str:
    with pytest.raises(RegistryFileError) as info:
        parse_registry_text(json.dumps(data), "json", "reg.json")
    return info.value.message.removeprefix("reg.json: ")


def assert_design_tool(registry: RegistryFile) -> None:
    (tool,) = registry.tools
    assert tool.ref == "extract-invoice@1.0.0"
    assert tool.provider == PythonProvider(target="examples.invoice:extract")
    assert tool.idempotent
    assert tool.cost == 0.01
    assert tool.timeout_s == 30
    assert tool.input_schema == TOOL["input_schema"]
    assert tool.output_schema == {"type": "object", "required": ["vendor", "total"]}


# --- loading each format --------------------------------------------------------------------------------------------


def test_the_design_toml_example_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "registry.toml", DESIGN_TOML)
    registry = load_registry_file(path)
    assert registry.source == str(path)
    assert registry.workflows == ()
    assert_design_tool(registry)


def test_a_path_given_as_a_string_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "registry.toml", DESIGN_TOML)
    assert load_registry_file(str(path)).source == str(path)


def test_the_same_tool_loads_from_yaml_and_json_under_tool_or_tools(tmp_path: Path) -> None:
    for name, content in [
        ("a.yaml", yaml.safe_dump({"tool": [TOOL]})),
        ("b.yml", yaml.safe_dump({"tools": [TOOL]})),
        ("c.json", json.dumps({"tool": [TOOL]})),
        ("d.json", json.dumps({"tools": [TOOL]})),
        ("e.YAML", yaml.safe_dump({"tools": [TOOL]})),
    ]:
        assert_design_tool(load_registry_file(write(tmp_path, name, content)))


def test_tools_and_workflows_load_together_in_file_order(tmp_path: Path) -> None:
    second = {**TOOL, "version": "1.1.0"}
    path = write(tmp_path, "all.json", json.dumps({"tools": [TOOL, second], "workflows": [WORKFLOW]}))
    registry = load_registry_file(path)
    assert [t.ref for t in registry.tools] == ["extract-invoice@1.0.0", "extract-invoice@1.1.0"]
    (workflow,) = registry.workflows
    assert workflow == WorkflowSpec.model_validate(WORKFLOW)
    assert workflow.ref == "invoice-pipeline@0.1.0-beta.1"
    assert workflow.step == WORKFLOW["step"]


def test_toml_workflow_tables_keep_the_step_tree_raw(tmp_path: Path) -> None:
    content = DESIGN_TOML + (
        '\n[[workflow]]\nname = "wf"\nversion = "2.0.0"\n'
        '[workflow.step]\nchain = [{ tool = "extract-invoice@1.0.0", id = "x" }, { anything = "goes" }]\n'
    )
    registry = load_registry_file(write(tmp_path, "r.toml", content))
    (workflow,) = registry.workflows
    assert workflow.step == {"chain": [{"tool": "extract-invoice@1.0.0", "id": "x"}, {"anything": "goes"}]}
    assert workflow.input_schema is None
    assert workflow.description == ""


def test_a_yaml_file_of_one_workflow_is_that_workflow(tmp_path: Path) -> None:
    path = write(tmp_path, "wf.yaml", yaml.safe_dump(WORKFLOW))
    registry = load_registry_file(path)
    assert registry.tools == ()
    assert [w.ref for w in registry.workflows] == ["invoice-pipeline@0.1.0-beta.1"]


def test_a_json_file_of_one_workflow_is_that_workflow(tmp_path: Path) -> None:
    path = write(tmp_path, "wf.json", json.dumps(WORKFLOW))
    assert load_registry_file(path).workflows == (WorkflowSpec.model_validate(WORKFLOW),)


def test_an_empty_file_declares_nothing(tmp_path: Path) -> None:
    for name, content in [("e.toml", ""), ("e.yaml", ""), ("e.json", "{}")]:
        registry = load_registry_file(write(tmp_path, name, content))
        assert registry.tools == ()
        assert registry.workflows == ()


def test_parse_registry_text_uses_the_given_format_and_source() -> None:
    registry = parse_registry_text(DESIGN_TOML, "toml", "inline")
    assert registry.source == "inline"
    assert_design_tool(registry)


def test_registry_files_and_workflow_specs_are_immutable() -> None:
    registry = parse_registry_text(json.dumps(WORKFLOW), "json", "x")
    with pytest.raises(AttributeError):
        registry.source = "y"  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        registry.workflows[0].name = "other"  # type: ignore[misc]


# --- malformed files ----------------------------------------------------------------------------------------------


def test_an_mcp_provider_names_a_server_not_a_command(tmp_path: Path) -> None:
    message = load_error(tmp_path, "design.toml", DESIGN_TOML + MCP_TOOL_TOML)
    assert "tool[1] 'read-file': provider.server: Field required" in message
    assert "provider.command: unknown field" in message


def test_a_provider_without_a_type_is_rejected() -> None:
    message = json_error({"tool": [{**TOOL, "provider": {"target": "a:b"}}]})
    assert message == "tool[0] 'extract-invoice': provider.type: missing; supported: python, mcp, http"


def test_a_bad_provider_target_names_the_entry_the_field_and_the_pattern(tmp_path: Path) -> None:
    content = DESIGN_TOML + '\n[[tool]]\nname = "b"\nversion = "1.0.0"\nprovider = { type = "python", target = "x" }\n'
    message = load_error(tmp_path, "r.toml", content)
    assert message.startswith("tool[1] 'b': provider.target: String should match pattern '")
    assert message.endswith("' (got 'x')")


def test_every_problem_is_reported_on_its_own_line() -> None:
    bad = {
        "name": "bad",
        "version": "1.2",
        "provider": {"type": "python", "target": "m:f", "extra": 1},
        "retry": {"tries": 3},
        "tags": [1],
        "input_schema": {"type": 3},
        "cost": -1,
    }
    message = json_error({"tool": [TOOL, bad, {"version": "1.0.0"}]})
    lines = message.splitlines()
    assert lines[0] == "8 problems:"
    assert lines[1:] == [
        "  - tool[1] 'bad': version: '1.2' is not a semantic version (expected MAJOR.MINOR.PATCH such as 1.2.0, "
        "optionally -prerelease and +build)",
        "  - tool[1] 'bad': provider.extra: unknown field (allowed: type, target)",
        "  - tool[1] 'bad': input_schema is not a valid JSON Schema: at type: 3 is not valid under any of the given "
        "schemas",
        "  - tool[1] 'bad': cost: Input should be greater than or equal to 0 (got -1)",
        "  - tool[1] 'bad': retry.tries: unknown field (allowed: max_attempts, initial_s, backoff, max_s, jitter)",
        "  - tool[1] 'bad': tags[0]: Input should be a valid string (got 1)",
        "  - tool[2]: name: Field required",
        "  - tool[2]: provider: Field required",
    ]


def test_entries_are_labelled_with_the_key_the_file_uses() -> None:
    assert json_error({"tools": [TOOL, {**TOOL, "version": "x"}]}).startswith("tools[1] 'extract-invoice': version: ")
    assert json_error({"workflows": [{**WORKFLOW, "step": []}]}).startswith("workflows[0] 'invoice-pipeline': step: ")


def test_an_unknown_tool_field_lists_the_allowed_fields() -> None:
    message = json_error({"tool": [{**TOOL, "timeout": 3}]})
    assert message.startswith("tool[0] 'extract-invoice': timeout: unknown field (allowed: name, version, description,")
    assert "timeout_s" in message
    assert "deprecated" in message


def test_a_missing_field_is_named() -> None:
    assert json_error({"tool": [{"name": "t", "version": "1.0.0"}]}) == "tool[0] 't': provider: Field required"


def test_an_entry_that_is_not_a_table_is_rejected() -> None:
    assert json_error({"tool": ["extract-invoice"]}) == (
        "tool[0]: must be a table/object with the tool's fields, not a str ('extract-invoice')"
    )


def test_a_single_tool_table_instead_of_an_array_of_tables_is_rejected(tmp_path: Path) -> None:
    content = '[tool]\nname = "a"\nversion = "1.0.0"\nprovider = { type = "python", target = "m:f" }\n'
    assert (
        load_error(tmp_path, "r.toml", content)
        == "'tool' must be a list of tool entries ([[tool]] in TOML), not a mapping"
    )


def test_unknown_top_level_keys_are_rejected_listing_the_allowed_ones() -> None:
    assert json_error({"tool": [TOOL], "toolz": []}) == (
        "unknown top-level key 'toolz'; allowed: tool, tools, workflow, workflows, server, servers, trigger, triggers "
        "(or a single workflow with name, version, step)"
    )


def test_both_spellings_of_a_collection_at_once_are_rejected() -> None:
    assert json_error({"tool": [TOOL], "tools": []}) == "use either 'tool' or 'tools', not both"


def test_a_top_level_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    assert load_error(tmp_path, "r.json", json.dumps([TOOL])) == (
        "the top level must be a mapping with any of tool, tools, workflow, workflows, server, servers, trigger, "
        "triggers, not a list"
    )


def test_duplicate_name_and_version_in_one_file_is_rejected(tmp_path: Path) -> None:
    content = yaml.safe_dump({"tools": [TOOL, {**TOOL, "version": "1.1.0"}, {**TOOL, "description": "other"}]})
    assert load_error(tmp_path, "dup.yaml", content) == (
        "tool extract-invoice@1.0.0 is defined twice (tools[0] and tools[2]); a published name@version is immutable, "
        "give one a new version"
    )


def test_duplicate_workflows_are_rejected_but_a_tool_and_a_workflow_may_share_a_name() -> None:
    assert json_error({"workflow": [WORKFLOW, WORKFLOW]}).startswith(
        "workflow invoice-pipeline@0.1.0-beta.1 is defined twice (workflow[0] and workflow[1])"
    )
    same = {**WORKFLOW, "name": TOOL["name"], "version": TOOL["version"]}
    registry = parse_registry_text(json.dumps({"tool": [TOOL], "workflow": [same]}), "json", "x")
    assert registry.tools[0].ref == registry.workflows[0].ref


def test_workflow_errors_name_the_workflow_and_field() -> None:
    bad = {**WORKFLOW, "version": "one", "step": "extract-invoice", "input_schema": {"required": "text"}}
    lines = json_error({"workflow": [WORKFLOW, bad]}).splitlines()
    assert lines[0] == "3 problems:"
    assert lines[1].startswith("  - workflow[1] 'invoice-pipeline': version: 'one' is not a semantic version")
    assert lines[2].startswith(
        "  - workflow[1] 'invoice-pipeline': input_schema is not a valid JSON Schema: at required"
    )
    assert (
        lines[3]
        == "  - workflow[1] 'invoice-pipeline': step: Input should be a valid dictionary (got 'extract-invoice')"
    )


def test_a_single_workflow_file_with_problems_names_the_workflow(tmp_path: Path) -> None:
    content = yaml.safe_dump({"name": "wf", "version": "1.0.0", "steps": {"tool": "x"}})
    message = load_error(tmp_path, "wf.yaml", content)
    assert message.splitlines() == [
        "2 problems:",
        "  - workflow 'wf': step: Field required",
        "  - workflow 'wf': steps: unknown field (allowed: name, version, description, input_schema, output_schema, "
        "step, limits, allowed_tools, deprecated)",
    ]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.toml", "[[tool]\nname = 1", "invalid TOML: "),
        ("bad.yaml", "tool: [1\n", "invalid YAML at line 2 column 1: "),
        ("bad.yml", "tool:\n  - name: a\n - b\n", "invalid YAML at line "),
        ("bad.json", '{"tool": [}', "invalid JSON at line 1 column 11: Expecting value"),
    ],
)
def test_syntax_errors_are_reported_with_their_position(tmp_path: Path, name: str, content: str, expected: str) -> None:
    message = load_error(tmp_path, name, content)
    assert message.startswith(expected)
    assert "\n" not in message


def test_a_file_with_another_suffix_is_rejected_naming_the_allowed_ones(tmp_path: Path) -> None:
    message = load_error(tmp_path, "registry.txt", DESIGN_TOML)
    assert message == "unsupported file type ('.txt'); a registry file must end in .toml, .yaml, .yml, .json"
    assert "no suffix" in load_error(tmp_path, "registry", DESIGN_TOML)


def test_a_missing_file_is_reported_as_a_registry_file_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(RegistryFileError) as info:
        load_registry_file(path)
    assert str(info.value) == f"{path}: cannot read the file: No such file or directory"
    assert isinstance(info.value, RegistryError)


def test_a_file_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[[tool]]\nname = "café"\n'.encode("latin-1"))
    with pytest.raises(RegistryFileError, match="not UTF-8 text"):
        load_registry_file(path)


def test_an_unknown_format_argument_is_rejected() -> None:
    with pytest.raises(RegistryFileError, match="unsupported format 'ini'; allowed: toml, yaml, json"):
        parse_registry_text("", "ini", "x")  # type: ignore[arg-type]
