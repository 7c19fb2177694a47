"""Event triggers: events start workflows, once per cooldown per entity, decided atomically in the store."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from patterns import Engine, InvalidStep, LimitExceeded, Limits
from patterns.triggers import new_event_id
from registry import Registry, WorkflowSpec
from registry.errors import InvalidToolSpec
from registry.triggers import TriggerSpec
from server.demo import TOOLS_FILE
from storage import Store
from storage.events import Claim
from tests.conftest import MovableClock
from tests.helpers import podium

pytestmark = pytest.mark.anyio

RENEWAL = {"name": "renewal", "version": "1.0.0", "step": {"tool": "echo"}}


async def setup(registry: Registry, **trigger: Any) -> None:
    await registry.register_workflow(WorkflowSpec.model_validate(RENEWAL))
    fields = {"name": "renewals", "on": "contract.renewal_due", "workflow": "renewal@^1", **trigger}
    await registry.register_trigger(TriggerSpec.model_validate(fields))


async def test_an_event_fires_once_per_cooldown_per_key(engine: Engine, registry: Registry, clock: MovableClock):
    await setup(registry, cooldown_s=3600)
    first = await engine.emit("contract.renewal_due", {"contract": "C-1"}, key="C-1", event_id="e1")
    again = await engine.emit("contract.renewal_due", {"contract": "C-1"}, key="C-1", event_id="e2")
    other = await engine.emit("contract.renewal_due", {"contract": "C-2"}, key="C-2", event_id="e3")
    clock.advance(3601)
    later = await engine.emit("contract.renewal_due", {"contract": "C-1"}, key="C-1", event_id="e4")
    [fired] = first["fired"]
    assert fired["trigger"] == "renewals" and fired["key"] == "C-1"
    assert again["fired"] == [] and again["suppressed"][0]["reason"] == "cooldown"
    assert again["suppressed"][0]["until"].endswith("Z")
    assert [f["key"] for f in other["fired"]] == ["C-2"] and [f["key"] for f in later["fired"]] == ["C-1"]
    run = await engine.wait(fired["run_id"], timeout_s=10)
    assert run.error is None, run.error
    assert run.status == "succeeded" and run.output == {"contract": "C-1"}
    assert run.tags == {"trigger": "renewals", "event_id": "e1"} and run.idempotency_key == "event:e1:renewals"
    stored = await engine.store.events.get("e2")
    assert stored is not None and stored.outcome["suppressed"][0]["reason"] == "cooldown"


async def test_a_redelivered_event_is_a_duplicate_and_starts_nothing(engine: Engine, registry: Registry) -> None:
    await setup(registry, cooldown_s=0)
    first = await engine.emit("contract.renewal_due", {"contract": "C-1"}, key="C-1", event_id="same")
    again = await engine.emit("contract.renewal_due", {"contract": "C-1"}, key="C-1", event_id="same")
    assert len(first["fired"]) == 1 and again["duplicate"] is True and again["fired"] == []
    assert again["suppressed"] == [
        {"trigger": "renewals", "reason": "duplicate", "until": again["suppressed"][0]["until"]}
    ]
    assert again["first"]["fired"] == first["fired"]  # what the event caused the first time
    assert len(await engine.store.list_runs(None, 10)) == 1


async def test_when_key_and_input_are_expressions_over_the_event(engine: Engine, registry: Registry) -> None:
    await setup(
        registry,
        on="contract.*",
        when="event.payload.days_left < `30`",
        key="event.payload.account",
        input={"contract": {"$": "event.key"}, "days": {"$": "event.payload.days_left"}},
    )
    far = await engine.emit("contract.renewal_due", {"days_left": 90, "account": 7}, key="C-1")
    near = await engine.emit("contract.expiring", {"days_left": 10, "account": {"id": 7}}, key="C-1")
    other_type = await engine.emit("invoice.paid", {"days_left": 1}, key="I-1")
    assert far["fired"] == far["suppressed"] == far["skipped"] == []  # `when` is false: not for this trigger
    [fired] = near["fired"]
    assert fired["key"] == '{"id":7}'  # a non-string key, as canonical JSON
    run = await engine.wait(fired["run_id"], timeout_s=10)
    assert run.output == {"contract": "C-1", "days": 10}
    assert other_type == {
        "event_id": other_type["event_id"],
        "duplicate": False,
        "fired": [],
        "suppressed": [],
        "skipped": [],
    }
    assert (await engine.store.events.get(other_type["event_id"])) is not None  # stored all the same


async def test_a_failing_expression_skips_its_trigger_and_not_the_others(engine: Engine, registry: Registry) -> None:
    await setup(registry, name="strict", key="length(event.payload.missing)")
    await registry.register_trigger(
        TriggerSpec.model_validate({"name": "lenient", "on": "contract.renewal_due", "workflow": "renewal"})
    )
    answer = await engine.emit("contract.renewal_due", {"contract": "C-9"}, key="C-9")
    assert [f["trigger"] for f in answer["fired"]] == ["lenient"]
    [skipped] = answer["skipped"]
    assert skipped["trigger"] == "strict" and "length" in skipped["reason"]


async def test_bad_events_and_bad_triggers_are_refused(engine: Engine, registry: Registry, store: Store) -> None:
    await setup(registry)
    with pytest.raises(InvalidStep, match="event type 'contract renewal' is not allowed"):
        await engine.emit("contract renewal", {})
    with pytest.raises(InvalidStep, match="an event's key is a string of 1 to 512 characters"):
        await engine.emit("contract.renewal_due", {}, key="k" * 513)
    async with Engine(store, registry, Limits(max_payload_bytes=1000)) as small:
        with pytest.raises(LimitExceeded, match="max_payload_bytes"):
            await small.emit("contract.renewal_due", {"blob": "x" * 2000})
    with pytest.raises(InvalidToolSpec, match="trigger 'lost' starts workflow 'nope': unknown workflow 'nope'"):
        await registry.register_trigger(TriggerSpec.model_validate({"name": "lost", "on": "a", "workflow": "nope"}))
    with pytest.raises(ValueError, match="`max_wait_s` caps a debounce: set `debounce_s` too"):
        TriggerSpec.model_validate({"name": "d", "on": "a", "workflow": "renewal", "max_wait_s": 60})
    await registry.enable_trigger("renewals", False)
    quiet = await engine.emit("contract.renewal_due", {}, key="C-1")
    assert quiet["fired"] == [] and quiet["suppressed"] == []


async def test_replicas_racing_on_one_key_fire_once(db_url: str) -> None:
    async with Store.open(db_url) as first, Store.open(db_url) as second:
        answers: list[str] = []

        async def claim(store: Store, n: int) -> None:
            _, created, decided = await store.events.decide(
                f"e{n}", "contract.renewal_due", "C-1", "{}", "test", [Claim("renewals", "C-1", 3600)], {}
            )
            assert created
            answers.append(decided["renewals"][0])

        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(claim, first if n % 2 else second, n)
    assert sorted(answers) == ["cooldown"] * 19 + ["fire"]


def test_the_cli_adds_triggers_emits_events_and_shows_what_they_caused(tmp_path: Path) -> None:
    db = str(tmp_path / "podium.db")
    registry_file = tmp_path / "renewals.toml"
    registry_file.write_text(
        '[[workflow]]\nname = "renewal-review"\nversion = "1.0.0"\nstep = { tool = "draft-renewal@^1" }\n\n'
        '[[trigger]]\nname = "renewals"\non = "contract.renewal_due"\nworkflow = "renewal-review@^1"\n'
        'input = { contract_id = { "$" = "event.key" } }\n'
    )
    assert podium("tools", "add", str(TOOLS_FILE), "--db", db).returncode == 0
    assert podium("triggers", "disable", "contract-renewals", "--db", db).returncode == 0  # the demo's own
    added = podium("triggers", "add", str(registry_file), "--db", db)
    fired = podium("events", "emit", "contract.renewal_due", "--key", "C-1001", "--id", "ev-1", "--json", "--db", db)
    cooled = podium("events", "emit", "contract.renewal_due", "--key", "C-1001", "--id", "ev-2", "--db", db)
    duplicate = podium("events", "emit", "contract.renewal_due", "--key", "C-1001", "--id", "ev-1", "--db", db)
    listed = podium("events", "list", "--key", "C-1001", "--json", "--db", db)
    disabled = podium("triggers", "disable", "renewals", "--db", db)
    quiet = podium("events", "emit", "contract.renewal_due", "--key", "C-2002", "--db", db)
    bad = podium("events", "emit", "contract renewal", "--db", db)
    assert (
        added.returncode == 0
        and "published trigger renewals (contract.renewal_due -> renewal-review@^1)" in added.stdout
    )
    answer = json.loads(fired.stdout)
    assert [f["trigger"] for f in answer["fired"]] == ["renewals"] and answer["runs"][0]["status"] == "succeeded"
    assert "suppressed renewals: cooldown until" in cooled.stdout
    assert "(a duplicate: it started nothing)" in duplicate.stdout
    assert [e["event_id"] for e in json.loads(listed.stdout)["events"]] == ["ev-2", "ev-1"]
    assert disabled.returncode == 0 and "no trigger matched" in quiet.stdout
    assert bad.returncode == 2 and "event type 'contract renewal' is not allowed" in bad.stderr


async def test_the_cooldown_ends_exactly_cooldown_s_after_the_run_fired(
    engine: Engine, registry: Registry, clock: MovableClock
) -> None:
    await setup(registry, cooldown_s=600)
    assert (await engine.emit("contract.renewal_due", {}, key="C-1"))["fired"]
    clock.advance(599.5)
    early = await engine.emit("contract.renewal_due", {}, key="C-1")
    clock.advance(0.5)  # 600 s after it fired: allowed again
    on_time = await engine.emit("contract.renewal_due", {}, key="C-1")
    assert early["fired"] == [] and early["suppressed"][0]["reason"] == "cooldown"
    assert len(on_time["fired"]) == 1
    clock.advance(1)  # and the new run's cooldown starts from its own firing
    assert (await engine.emit("contract.renewal_due", {}, key="C-1"))["suppressed"][0]["reason"] == "cooldown"


async def runs_of(engine: Engine) -> list[Any]:
    return await engine.store.list_runs(None, 50)


async def until_a_run(engine: Engine, count: int = 1) -> list[Any]:
    """The runs once ``count`` exist (the scheduler's pass fires due bursts four times a second)."""
    with anyio.fail_after(10):
        while len(runs := await runs_of(engine)) < count:
            await anyio.sleep(0.05)
    return runs


async def test_a_debounced_burst_starts_one_run_with_its_last_event(
    engine: Engine, registry: Registry, clock: MovableClock
) -> None:
    await setup(registry, debounce_s=60, max_wait_s=600, cooldown_s=0)
    first = await engine.emit("contract.renewal_due", {"n": 1}, key="C-1", event_id="b1")
    clock.advance(30)
    second = await engine.emit("contract.renewal_due", {"n": 2}, key="C-1", event_id="b2")
    clock.advance(30)  # 60 s after the first, 30 after the last: still quiet for too short
    assert await engine.fire_due_triggers() == 0 and await runs_of(engine) == []
    assert first["suppressed"][0]["reason"] == second["suppressed"][0]["reason"] == "debounced"
    clock.advance(31)
    [run] = await until_a_run(engine)
    done = await engine.wait(run.id, timeout_s=10)
    assert done.output == {"n": 2} and done.tags == {"trigger": "renewals", "event_id": "b2"}
    stored = await engine.store.events.get("b2")
    assert stored is not None and stored.outcome["fired"][0]["run_id"] == run.id


async def test_max_wait_caps_a_burst_that_never_goes_quiet(
    engine: Engine, registry: Registry, clock: MovableClock
) -> None:
    await setup(registry, debounce_s=60, max_wait_s=120, cooldown_s=0)
    for n in range(3):  # every 50 s: never 60 s of quiet
        await engine.emit("contract.renewal_due", {"n": n}, key="C-1")
        clock.advance(50)
    # now t = 150: the burst began at 0, so it was due at 120 whatever came after
    [run] = await until_a_run(engine)
    assert (await engine.wait(run.id, timeout_s=10)).output == {"n": 2}


async def test_a_debounced_event_fires_after_a_restart(
    store: Store, registry: Registry, limits: Limits, clock: MovableClock
) -> None:
    await setup(registry, debounce_s=60, cooldown_s=0)
    async with Engine(store, registry, limits) as first:
        answer = await first.emit("contract.renewal_due", {"n": 7}, key="C-1")
        assert answer["suppressed"][0]["reason"] == "debounced"
    clock.advance(61)  # the first engine is gone; the timer is in the store
    async with Engine(store, registry, limits) as second:
        [run] = await until_a_run(second)
        assert (await second.wait(run.id, timeout_s=10)).output == {"n": 7}


async def test_a_redelivery_after_a_crash_between_decision_and_run_starts_the_run(
    engine: Engine, registry: Registry, store: Store
) -> None:
    await setup(registry, cooldown_s=3600)
    # the first delivery's decision, committed, and then the process died before it started the run
    _, created, decided = await store.events.decide(
        "e1", "contract.renewal_due", "C-1", '{"contract":"C-1"}', "api", [Claim("renewals", "C-1", 3600)], {}
    )
    assert created and decided == {"renewals": ("fire", None)}
    assert await engine.store.list_runs(None, 10) == []
    again = await engine.emit("contract.renewal_due", {"contract": "C-1"}, key="C-1", event_id="e1")
    assert again["duplicate"] is True and again["fired"] == []
    [fired] = again["first"]["fired"]
    assert "starting" not in again["first"]
    run = await engine.wait(fired["run_id"], timeout_s=10)
    assert run.status == "succeeded" and run.output == {"contract": "C-1"}
    assert run.idempotency_key == "event:e1:renewals"
    third = await engine.emit("contract.renewal_due", {"contract": "C-1"}, key="C-1", event_id="e1")
    assert third["first"]["fired"] == [fired]  # recorded now: no second run
    assert len(await engine.store.list_runs(None, 10)) == 1
    stored = await store.events.get("e1")
    assert stored is not None and "starting" not in stored.outcome


async def test_an_event_that_fired_records_its_run_and_nothing_pending(engine: Engine, registry: Registry) -> None:
    await setup(registry)
    answer = await engine.emit("contract.renewal_due", {"contract": "C-3"}, key="C-3", event_id="e3")
    assert set(answer) == {"event_id", "duplicate", "fired", "suppressed", "skipped"}
    stored = await engine.store.events.get("e3")
    assert stored is not None and stored.outcome["fired"] == answer["fired"] and "starting" not in stored.outcome


def test_generated_event_ids_are_distinct_version_4_uuids() -> None:
    ids = [new_event_id() for _ in range(1000)]  # several refills of the random bytes (256 ids each)
    assert len(set(ids)) == len(ids)
    for event_id in ids:
        parsed = uuid.UUID(event_id)
        assert str(parsed) == event_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122
