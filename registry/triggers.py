"""Event triggers (``[[trigger]]`` in registry files): which events start which workflow, for which entity, how
often at most.

A trigger matches events whose ``type`` equals ``on`` or matches it as a glob (``contract.*``), when its optional
``when`` (JMESPath over ``{event}``) is truthy. ``key`` (JMESPath over ``{event}``; default the event's ``key``)
names the entity; ``cooldown_s`` is the least time between two runs for one key (leading edge: the first event
fires, the ones after it within the cooldown are suppressed). With ``debounce_s``, an event outside the cooldown is
held back instead, and one run starts with the last of a burst once ``debounce_s`` pass without another, never
later than ``max_wait_s`` after the first. ``input`` is a template over ``{event}`` (default: the event's payload).
Triggers are not versioned: adding one again replaces it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

TRIGGER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:*?\[\]-]{0,127}$"
DEFAULT_COOLDOWN_S = 14_400.0
MAX_COOLDOWN_S = 30 * 86_400.0


class TriggerSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)

    name: str = Field(pattern=TRIGGER_NAME_PATTERN)
    on: str = Field(pattern=EVENT_TYPE_PATTERN, description="The event type it reacts to, exact or a glob.")
    when: str | None = Field(None, min_length=1, max_length=1024, description="JMESPath over {event}: truthy to fire.")
    key: str | None = Field(
        None, min_length=1, max_length=1024, description="JMESPath over {event} naming the entity (default: event.key)."
    )
    workflow: str = Field(min_length=1, max_length=256, description="The workflow a fired event starts.")
    input: Any = Field(None, description="A template over {event}; default: the event's payload.")
    cooldown_s: float = Field(DEFAULT_COOLDOWN_S, ge=0, le=MAX_COOLDOWN_S)
    debounce_s: float | None = Field(None, gt=0, le=86_400)
    max_wait_s: float | None = Field(None, gt=0, le=7 * 86_400)
    enabled: bool = True

    @model_validator(mode="after")
    def _debounce(self) -> TriggerSpec:
        if self.max_wait_s is not None and self.debounce_s is None:
            raise ValueError("`max_wait_s` caps a debounce: set `debounce_s` too")
        if self.debounce_s is not None and self.max_wait_s is not None and self.max_wait_s < self.debounce_s:
            raise ValueError("`max_wait_s` must be at least `debounce_s`")
        return self

    @property
    def has_input(self) -> bool:
        return "input" in self.model_fields_set

    def matches(self, event_type: str) -> bool:
        return event_type == self.on or fnmatch.fnmatchcase(event_type, self.on)

    def definition(self) -> dict[str, Any]:
        """What is stored (``enabled`` apart); an unset ``input`` stays unset (null would be a template)."""
        return self.model_dump(mode="json", exclude={"enabled"} if self.has_input else {"enabled", "input"})

    def definition_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.definition(), sort_keys=True).encode()).hexdigest()
