import pytest

pytestmark = pytest.mark.anyio


async def test_a_chain_passes_each_output_to_the_next_step(engine):
    run = await engine.run(
        {"chain": [{"tool": "add"}, {"tool": "double", "input": {"value": {"$": "prev.sum"}}}]}, {"a": 1, "b": 2}
    )
    assert run.status == "succeeded"
    assert run.output == {"value": 6}
    assert run.usage_steps == 2
