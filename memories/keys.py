"""The key layout: every key about one person carries that person's Redis Cluster hash tag.

Redis Cluster places a key by CRC16 of the part between its first ``{`` and the next ``}``
(the *hash tag*), when there is one. Every per-person key here ends in ``{<user_tag>}``
(``validation.user_tag``: ASCII letters and digits only, so it is safe between braces), or
holds it before a record id, so all of a person's keys share one hash slot and every Lua
script and MULTI transaction (which each touch keys of one person only) is slot-safe::

    {ns}:coach:{kind}:{<tag>}                    CoachingStore (plan, checkins, ... applied)
    {ns}:session:{<tag>}, {ns}:session_threads:{<tag>}   SessionDirectory
    {ns}:intervention_stats:{vt}:{<tag>}         per-tool outcome counters
    {ns}:feedback_summary:{<tag>}                the feedback summary
    {ns}:{element}:{<tag>}                       one JSON document per person (profile, current_state)
    {ns}:{element}:{vt}:{<tag>}:{record_id}      index records (interventions, reflections, feedback)
    {ns}:account:{<tag>}, {ns}:passkeys:{<tag>}, {ns}:signin_fail:{<tag>}   app.accounts (credentials)
    {ns}:websession:{<tag>}:{sid}, {ns}:websessions:{<tag>}                 app.accounts (sessions)
    {ns}:voice_live:{<tag>}                      app.accounts (newest voice socket's generation)
    {ns}:audit:{<tag>}                           app.audit (the person's audit log)

``{ns}``, ``{kind}``, ``{vt}``, ``{element}`` are placeholders; ``{<tag>}`` is the tag between
literal braces, e.g. ``sam2voice:coach:plan:{maya}``. Nothing else in a key may contain
``{``: the namespace is ``[a-z0-9_]`` and vector tags ``[a-z0-9_-]``, so the person's tag is
always the first braces in the key (``tests/test_key_slots.py`` checks it).
"""

from __future__ import annotations

from memories.validation import user_tag


def hash_tag(tag: str) -> str:
    """``{tag}`` for an already encoded user tag (``validation.user_tag``)."""
    if not (tag and tag.isascii() and tag.isalnum()):
        raise ValueError(f"not an encoded user tag: {tag!r}")
    return "{" + tag + "}"


def person_tag(user_id: object) -> str:
    """The hash tag of a person, ``{<user_tag>}`` (validates the id)."""
    return hash_tag(user_tag(user_id))


def person_key(*parts: str, user_id: object) -> str:
    """``parts`` joined by ``:``, ending in the person's hash tag."""
    return ":".join((*parts, person_tag(user_id)))
