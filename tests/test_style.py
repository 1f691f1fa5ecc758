"""The reply style guard: what a user hears is short, kind, on the step, and literal when needed."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from graphs.configuration import CompanionSettings
from graphs.models.template import TemplateChatModel
from graphs.prompts import reply_messages
from graphs.style import MAX_CHARS, StyleProfile, enforce_style, transition_warning

PLAIN = StyleProfile()
AUTISM = StyleProfile(autism=True)
DRAFT = "Let's open the math book to the first problem. Want me to start a 5-minute timer?"

WELL_FORMED_DRAFTS = [
    DRAFT,
    "That sounds like a lot. Let's take three slow breaths together.",
    "Great work finishing the first page! Want to take a 2-minute break?",
    "Your 25-minute timer is running. Let's start with the first small step.",
    "Thanks for telling me. Let's set a reminder for tomorrow morning.",
    "I'm here with you. What's one tiny thing we could try next?",
    "Heads-up: next we will do homework. You can play for 5 more minutes first.",
    "Reminder: take your medication. Check-in: how is the essay going? Let's write one sentence now.",
    f"{transition_warning('a breathing exercise')} We will breathe in for four counts.",
]


@pytest.mark.parametrize("draft", WELL_FORMED_DRAFTS)
@pytest.mark.parametrize("profile", [PLAIN, AUTISM])
def test_a_well_formed_draft_passes_unchanged(draft: str, profile: StyleProfile) -> None:
    styled = enforce_style(draft, draft=draft, profile=profile, user_message="I can't start my homework.")
    assert styled.text == draft
    assert styled.reasons == []


def test_a_good_paraphrase_is_kept_and_cleaned() -> None:
    raw = 'Assistant: "**Let\'s open** your math book at the first problem. 🙂 I can start a 5-minute timer."\nUser: ok'
    styled = enforce_style(raw, draft=DRAFT, profile=PLAIN)
    assert styled == styled.model_copy(update={"used_draft": False, "reasons": []})
    assert styled.text == "Let's open your math book at the first problem. I can start a 5-minute timer."


def test_long_replies_are_cut_to_two_complete_sentences() -> None:
    raw = (
        "Let's open the math book now. Start with the first problem. Then we set a 5-minute timer. "
        "After that we check the answer and the next"
    )
    styled = enforce_style(raw, draft=DRAFT, profile=PLAIN)
    assert not styled.used_draft, styled.reasons
    assert styled.text == "Let's open the math book now. Start with the first problem."
    assert len(styled.text) <= MAX_CHARS


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        ("Just let me know what's on your", "incomplete"),
        ("Математика книга открыть первая задача сейчас.", "gibberish"),
        ("Math math math book book book timer timer.", "gibberish"),
        ("You should have opened the math book earlier. Open it now.", "judgmental"),
        ("Why didn't you open the math book? Open it to the first problem.", "judgmental"),
        ("No excuses, open the math book to the first problem.", "judgmental"),
        ("Just do it: open the math book and start the timer.", "judgmental"),
        ("It's a bit early and I'm getting ready to finish my homework.", "speaks as the user"),
        ("As an AI language model, I suggest opening the math book.", "model"),
        ("You're not alone in this world of chaos, full of courage and resilience.", "draft's step"),
        ("Let's open the book and then we go to the beach for a glass of wine with friends.", "not in the draft"),
        ("Let's open the math book. " + "It is a very long and winding sentence " * 8 + ".", None),
    ],
)
def test_broken_replies_fall_back_to_the_draft(raw: str, reason: str | None) -> None:
    styled = enforce_style(raw, draft=DRAFT, profile=PLAIN)
    if reason is None:  # the over-long second sentence is dropped, the first one stays
        assert styled.text == "Let's open the math book."
        return
    assert styled.used_draft
    assert styled.text == DRAFT
    assert any(reason in r for r in styled.reasons), styled.reasons


def test_a_reply_that_parrots_the_user_is_rejected() -> None:
    user = "I can't open the math book today."
    styled = enforce_style("I can't open the math book today.", draft=DRAFT, profile=PLAIN, user_message=user)
    assert styled.used_draft and styled.reasons


def test_idioms_are_rejected_only_for_literal_profiles() -> None:
    raw = "Let's open the math book, the first problem is a piece of cake."
    assert not enforce_style(raw, draft=DRAFT, profile=PLAIN).used_draft
    for profile in (AUTISM, StyleProfile(literal_language=True)):
        styled = enforce_style(raw, draft=DRAFT, profile=profile)
        assert styled.used_draft
        assert any("piece of cake" in r for r in styled.reasons)


def test_the_heads_up_of_an_autism_draft_is_kept() -> None:
    draft = f"{transition_warning('homework')} You can play for 5 more minutes first."
    styled = enforce_style("You can play 5 more minutes, then homework.", draft=draft, profile=AUTISM)
    assert not styled.used_draft, styled.reasons
    assert styled.text == "Heads-up: next we will do homework. You can play 5 more minutes, then homework."


def test_the_model_own_heads_up_is_replaced_by_the_draft_one() -> None:
    draft = f"{transition_warning('a breathing exercise')} We will breathe in for four counts."
    styled = enforce_style(
        "Heads-Up: Next, we'll practice! We breathe in for four counts.", draft=draft, profile=AUTISM
    )
    assert styled.text == "Heads-up: next we will do a breathing exercise. We breathe in for four counts."


def test_reminders_and_check_ins_of_the_draft_are_said_word_for_word() -> None:
    draft = "Reminder: take your medication. Check-in: how is the essay going? Let's write one sentence now."
    styled = enforce_style("Reminder: meds! Let's write just one sentence now. Then rest.", draft=draft, profile=PLAIN)
    assert not styled.used_draft, styled.reasons
    assert styled.text == (
        "Reminder: take your medication. Check-in: how is the essay going? Let's write just one sentence now."
    )
    assert enforce_style("Let's open the math book.", draft=draft, profile=PLAIN).text == draft  # off the step


def test_a_reply_that_swaps_the_step_for_something_else_is_rejected() -> None:
    draft = "Being tired is okay. Let's drink a glass of water first."
    styled = enforce_style(
        "Being tired can be just as enjoyable as drinking a glass of wine!", draft=draft, profile=PLAIN
    )
    assert styled.used_draft and styled.text == draft
    assert any("unsafe" in r for r in styled.reasons)
    styled = enforce_style("Being tired is fun, so enjoy drinking lemonade at the beach.", draft=draft, profile=PLAIN)
    assert styled.used_draft and any("not in the draft" in r for r in styled.reasons)


def test_transition_warning_is_literal() -> None:
    assert transition_warning("a breathing exercise") == "Heads-up: next we will do a breathing exercise."
    assert transition_warning(" homework. ") == "Heads-up: next we will do homework."


def test_reply_messages_end_the_system_prompt_with_the_draft() -> None:
    history = [HumanMessage(f"m{i}") if i % 2 else AIMessage(f"r{i}") for i in range(10)]
    messages = reply_messages(
        context="Helped before: a 5-minute timer.",
        history=history,
        message="I can't start.",
        draft=DRAFT,
        profile=AUTISM,
    )
    system, *rest = messages
    assert isinstance(system, SystemMessage)
    assert system.text.splitlines()[-1] == f"Draft reply: {DRAFT}"
    assert "Helped before: a 5-minute timer." in system.text
    assert "literal" in system.text and "heads-up" in system.text.lower()
    assert rest[:-1] == history  # as many as the caller kept (history_messages), not capped again
    assert rest[-1] == HumanMessage("I can't start.")
    plain = reply_messages(context="", history=[], message="hi", draft=DRAFT, profile=PLAIN)
    assert "literal" not in plain[0].text
    assert len(plain) == 2


async def test_the_template_model_says_the_draft_of_reply_messages() -> None:
    messages = reply_messages(context="", history=[], message="I can't start.", draft=DRAFT, profile=PLAIN)
    reply = await TemplateChatModel().ainvoke(messages)
    assert enforce_style(reply.text, draft=DRAFT, profile=PLAIN).text == DRAFT


def test_a_checkpoint_keeps_at_least_the_history_the_reply_model_is_given() -> None:
    # keep_messages below what history_messages needs would silently cut the reply model's history.
    with pytest.raises(ValidationError, match="keep_messages"):
        CompanionSettings(history_messages=12, keep_messages=12)
    assert CompanionSettings(history_messages=12, keep_messages=14).keep_messages == 14
