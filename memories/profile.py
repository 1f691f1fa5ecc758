"""ProfileMemory: who the person is and how they like to be supported."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field

from memories.documents import DocumentMemory
from memories.records import Record, ShortText, Tags, Timestamp


class Diagnosis(StrEnum):
    """What the person told us about their neurotype."""

    NONE = "NONE"
    ADHD = "ADHD"
    AUTISM = "AUTISM"
    BOTH = "BOTH"


class DiagnosisSource(StrEnum):
    """Where the diagnosis comes from."""

    OFFICIAL = "OFFICIAL"
    SELF = "SELF"
    UNSPECIFIED = "UNSPECIFIED"


class CommunicationStyle(StrEnum):
    """How the companion should phrase things."""

    GENTLE = "gentle"
    DIRECT = "direct"
    LITERAL = "literal"
    PLAYFUL = "playful"


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown IANA timezone (use one like 'Europe/Berlin' or 'America/New_York')") from None
    return value


Timezone = Annotated[str, AfterValidator(_check_timezone)]


class Preferences(Record):
    """How the person wants check-ins and conversation to feel."""

    checkin_interval_minutes: int = Field(15, ge=1, le=24 * 60, description="Minutes between check-ins.")
    sensory_sensitivities: Tags = Field(default_factory=list, description="E.g. 'loud noise', 'bright light'.")
    communication_style: CommunicationStyle = Field(CommunicationStyle.GENTLE, description="Tone of replies.")


class PreferencesUpdate(Record):
    """A partial update of :class:`Preferences`."""

    checkin_interval_minutes: int | None = Field(None, ge=1, le=24 * 60)
    sensory_sensitivities: Tags | None = None
    communication_style: CommunicationStyle | None = None


class Profile(Record):
    """A person's profile."""

    name: ShortText | None = Field(None, description="What the person wants to be called.")
    timezone: Timezone = Field("UTC", description="IANA timezone, e.g. 'America/New_York'.")
    locale: str = Field("en-US", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="BCP 47 locale.")
    diagnosis: Diagnosis = Field(Diagnosis.NONE, description="ADHD, autism, both or none.")
    diagnosis_source: DiagnosisSource = Field(DiagnosisSource.UNSPECIFIED, description="Official or self-identified.")
    consent_diagnosis_in_prompts: bool = Field(False, description="May the diagnosis shape the model's prompts?")
    consent_pooled_learning: bool = Field(
        True, description="May what worked for them help people like them, as anonymous counts per kind of moment "
                          "(memories.population)? On unless they say no; turning it off takes their counts back.")
    preferences: Preferences = Field(default_factory=Preferences)
    last_updated: Timestamp = Field(0.0, description="When the profile last changed.")


class ProfileUpdate(Record):
    """A partial profile update: only the fields given change."""

    name: ShortText | None = None
    timezone: Timezone | None = None
    locale: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    diagnosis: Diagnosis | None = None
    diagnosis_source: DiagnosisSource | None = None
    consent_diagnosis_in_prompts: bool | None = None
    consent_pooled_learning: bool | None = None
    preferences: PreferencesUpdate | None = None


class ProfileMemory(DocumentMemory[Profile, ProfileUpdate]):
    """The person's profile; the diagnosis reaches prompts only with their consent."""

    name = "profile"
    memory_variables = ["profile"]
    document = Profile
    patch = ProfileUpdate

    def render(self, doc: Profile) -> str:
        """Profile facts for the prompt."""
        prefs = doc.preferences
        lines = [
            f"Name: {doc.name}" if doc.name else "Name: not given",
            f"Timezone: {doc.timezone}; locale: {doc.locale}",
            f"Communication style: {prefs.communication_style.value}",
            f"Check in every {prefs.checkin_interval_minutes} minutes",
        ]
        if prefs.sensory_sensitivities:
            lines.append("Sensory sensitivities: " + ", ".join(prefs.sensory_sensitivities))
        if doc.consent_diagnosis_in_prompts and doc.diagnosis is not Diagnosis.NONE:
            source = {"OFFICIAL": "diagnosed", "SELF": "self-identified", "UNSPECIFIED": "stated"}
            lines.append(f"Neurotype: {doc.diagnosis.value} ({source[doc.diagnosis_source.value]})")
        return "\n".join(lines)
