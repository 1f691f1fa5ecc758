"""The few rules the understanding step keeps next to its trained heads, where a rule is
clearly better: chat commands, explicit requests and plan questions by their usual
wording, failure said with a negation ("that did not help"), how many steps a progress
report counts, and the task a request names.

A rule never decides alone that something is *not* a request or a failure; it only adds
certainty the heads might lack on short or oddly spelled messages.
"""

from __future__ import annotations

import re

from graphs.understanding.acts import Question, Request, Sign
from graphs.understanding.features import tokens
from tools.wording import task_phrase

COMMANDS: dict[str, Sign] = {"/yes": Sign.HELPED, "/no": Sign.NOT_HELPED}

_REQUESTS: tuple[tuple[Request, re.Pattern[str]], ...] = tuple((r, re.compile(p)) for r, p in (
    (Request.SPLIT_STEP, r"\b(?:step|this|that|it|this one|that one) (?:is|feels|seems|'s) (?:way |still |too |so )*"
                         r"(?:too )?(?:big|much|hard|huge|long)\b.*\b(?:step|smaller|split|break)|"
                         r"\b(?:this|that|the|current|next) step is (?:way |still |so )?too (?:big|much|hard|long)\b|"
                         r"\b(?:smaller|tinier) (?:steps|step|pieces|bits)\b|\b(?:break|split|chop) (?:it|this|that|the step|"
                         r"this step|that step) (?:down )?(?:even )?(?:more|further|smaller|up more)\b|"
                         r"\bmake (?:it|the step|this step|that step|this|that) (?:even )?smaller\b"),
    (Request.STEPS, r"\b(?:break|split|chop|turn)\b.{0,60}\b(?:into|in) (?:\w+ )?(?:small|tiny|little|baby|mini|"
                    r"easy|smaller|manageable)? ?(?:steps|pieces|parts|chunks|bits)\b|\b(?:steps|plan) for\b|"
                    r"\bwhere (?:do i|to|should i) (?:even )?(?:start|begin)\b.*\b(?:help|tell|show)|"
                    r"\b(?:help|tell|show) me (?:where|how) to (?:start|begin)\b|\bmicro ?steps?\b"),
    # Before the check-in: "can you do a sensory check with me" is not "check with me".
    (Request.SENSORY, r"\bsensory (?:check|thing|scan)\b|\bcheck (?:my|the) (?:senses|surroundings)\b"),
    (Request.REMINDER, r"\bremind me\b|\bset (?:a|an) (?:reminder|alarm)\b|\breminder (?:to|for|about)\b"),
    (Request.CHECKIN, r"\bcheck (?:in |back )?(?:on|with) me\b|\bcheck in (?:with me |on me )?in\b|\bcheck back in\b|"
                      r"\bkeep me accountable\b|\bcheck[- ]in (?:with me )?(?:in|at)\b"),
    (Request.TIME, r"\bwhat(?:'s| is)? the time\b|\bwhat time is it\b|\bcurrent time\b|\btime (?:is it|rn|right now)\?"),
    (Request.BREATHING, r"\b(?:breathing exercise|breathe with me|help me breathe|breathing thing|do (?:some |a )?breathing)\b"),
    (Request.GROUNDING, r"\b(?:grounding|ground me|5 ?4 ?3 ?2 ?1|five four three)\b"),
))
_QUESTIONS: tuple[tuple[Question, re.Pattern[str]], ...] = tuple((q, re.compile(p)) for q, p in (
    (Question.PROGRESS, r"\bhow many (?:steps|more|left)\b|\b(?:steps|how much) (?:are |is )?left\b|\bhow far (?:am i|along)\b"),
    (Question.NEXT_STEP, r"\bwhat(?:'s| is)? (?:the |my )?next\b|\bwhat now\b|\bnext step\b|\bwhat was i (?:doing|supposed)|"
                         r"\bwhere was i\b|\bwhere (?:am|was) i (?:at|up to)\b|\bwhat (?:am|was) i (?:supposed|meant) to\b|"
                         r"\bwhat step\b|\bwhich step\b|\bcurrent step\b|\bwhat do i do now\b|\bremind me what\b"),
    (Question.PLAN, r"\b(?:my|the|whole) plan\b|\bwhat(?:'s| is| was| are) (?:the |my )?steps\b|\blist (?:the|my) steps\b"),
    (Question.MEMORY, r"\bwhat do you (?:know|remember)\b|\bdo you remember\b|\bwhat have you learned\b"),
    (Question.TIME_SINCE_CHECKIN, r"\bhow long (?:since|has it been|have i been)\b"),
))
_NEGATED_HELP = re.compile(
    r"\b(?:didn'?t|did not|doesn'?t|does not|don'?t|wasn'?t|was not|isn'?t|is not|not|never|hasn'?t|has not|won'?t|"
    r"nothing|no)\s+(?:really |even |actually |at all |quite |much |seem to |seemed to |do much |do anything |"
    r"helped? |)(?:help|helped|helping|work|worked|working|useful|do anything|do much|do a thing|change anything|"
    r"make (?:a |any )?difference|better|calmer|sure it helped)\b|"
    r"\bstill (?:stuck|frozen|can'?t|cannot|not|too|so|really|overwhelmed|anxious|panicking|distracted|spiral\w*|"
    r"on my phone|scrolling|in bed|sitting|staring|haven'?t|havent|nothing)\b|\bgave up\b|\bgiving up\b|"
    r"\b(?:made|makes|making) (?:it|me|things|everything) (?:feel )?(?:worse|more)\b|\bno luck\b|\bno change\b|"
    r"\bno difference\b|\bdidn'?t do it\b|\buseless\b|\bpointless\b|\bwaste of (?:time|energy)\b|\bno use\b|"
    r"\bdid nothing\b|\bnothing changed\b|\bforget it\b|\bmade (?:it|things|me) worse\b|\beven worse\b")
# "I should be better than this at my age": "better" as a standard they fall short of, not
# "feeling better". Self-criticism, never a success to celebrate.
_FALLING_SHORT = re.compile(
    r"\b(?:should|shoulda|should'?ve|ought to|supposed to|meant to|expected to|need to|have to|gotta|"
    r"wish i (?:was|were|could)|why can'?t i|why cant i)\b(?:\s+\w+){0,3}?\s+(?:better|more)\b(?! now\b| thanks\b)"
    r"|\b(?:could|should) have done (?:it |this |that |way |much )?better\b|\bnot good enough\b")
# Success said outright, outside any negation's scope (``features.tokens`` marks the scope).
_SUCCESS_WORDS = frozenset("helped helps helpful worked works useful better calmer calm relaxed thanks amazing great "
                           "perfect awesome nice good started finished done completed".split())
_WORDS = {"one": 1, "two": 2, "both": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "couple": 2,
          "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}
_ALL = re.compile(r"\b(?:all (?:of )?(?:it|them|the steps|my steps|the things|done|finished)|everything|every step|"
                  r"the whole (?:thing|plan|list|task)|whole thing|all \d+|all (?:five|four|three|six|seven)|"
                  r"(?:finished|done with|completed) the (?:plan|list)|the last (?:step|one)|all steps)\b")
_COUNT = re.compile(r"\b(?:did|done|finished|completed|through|knocked out|ticked off|got)\b(?:\s+\w+){0,3}?\s+"
                    r"(?:the\s+)?(?:first\s+)?(\d|one|two|three|four|five|six|seven|both|couple)\b"
                    r"|\b(?:first|the)\s+(two|three|four|five|2|3|4|5)\b"
                    r"|\b(\d|two|three|four|five|both)\s+(?:of (?:them|those|the steps|it)|steps?|things|parts)\b")


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, single spaces."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").lower().split())


def request_by_rule(text: str) -> Request | None:
    """An explicit request in its usual wording."""
    low = normalise(text)
    return next((r for r, p in _REQUESTS if p.search(low)), None)


# How a question starts, spoken or typed (fillers first: "um so what's next"). Voice transcripts
# carry no "?", so the wording has to say it.
_FILLERS = r"(?:(?:um+|uh+|so|ok(?:ay)?|hey|hi|and|but|well|like|sorry|sam|then|also|oh|wait|hmm+|yeah|right)[,!.]?\s+)*"
_ASKS = re.compile(r"^" + _FILLERS + r"(?:what\w*|where\w*|which|how\w*|when\w*|who\w*|why\w*|wat|wut|wot|whats|"
                   r"is|isn'?t|are|aren'?t|am|do|does|did|don'?t|can|could|should|shall|would|will|have|has|was|were|"
                   r"any|remind|tell|show|explain|give|list)\b")


FORGOT = re.compile(r"\b(?:forgot|forget|forgetting|forgotten)\b", re.IGNORECASE)
# What the companion's questions are about: the plan, its steps, progress, the time, its memory.
_ASKED_ABOUT = re.compile(r"\b(?:plan|steps?|next|left|progress|far|time|clock|remember\w*|know|learn\w*|list|"
                          r"doing|supposed|meant|where|what\w*|which|how|check[- ]?ins?|since|up to|did i|am i)\b")


def sounds_like_a_question(text: str) -> bool:
    """Whether ``text`` could be one of the questions the companion answers: a "?", a question's
    first word ("whats next", "is there a plan"), or what such a question is about ("need the next
    step", "no idea where i was"). "i forgot my meds again" is none of these."""
    low = normalise(text)
    return "?" in low or bool(_ASKS.match(low)) or bool(_ASKED_ABOUT.search(low))


def question_by_rule(text: str) -> Question | None:
    """A question about the plan, state or memory in its usual wording."""
    low = normalise(text)
    return next((q for q, p in _QUESTIONS if p.search(low)), None)


def says_it_failed(text: str) -> bool:
    """Failure said outright: a negated success ("that did not help") or "still stuck"."""
    return bool(_NEGATED_HELP.search(normalise(text)))


_STILL_STUCK = re.compile(
    r"\bstill\b(?:\s+\w+){0,3}?\s+(?:stuck|frozen|can'?t|cannot|not|haven'?t|havent|overwhelmed|anxious|panick\w*|"
    r"distracted|scrolling|sitting|staring|nothing|too|so|on my phone|in bed)\b|\bgave up\b|\bgiving up\b")


def still_stuck(text: str) -> bool:
    """They say they are still where they were ("nah still stuck", "I'm still just sitting here"):
    a moment to help with, unlike a bare "no" to "want to try something different?"."""
    return bool(_STILL_STUCK.search(normalise(text)))


def falls_short(text: str) -> bool:
    """Self-criticism shaped like an outcome: "I should be better than this", "not good enough"."""
    return bool(_FALLING_SHORT.search(normalise(text)))


def says_it_helped(text: str) -> bool:
    """Success said outright ("that helped", "works for me", "feeling calmer"), never inside a
    negation, and not "better" as a standard they fall short of ("should be better at this")."""
    words = set(tokens(text))
    if falls_short(text):
        words -= {"better", "good"}
    return any(w in _SUCCESS_WORDS for w in words) and not says_it_failed(text)


_SAYS_DONE = re.compile(r"\b(?:did|done|finished|completed|wrote|sent|ticked off|got through|knocked out|managed)\b")


def says_done(text: str) -> bool:
    """The message says something got done ("did the first step", "finished the title")."""
    return bool(_SAYS_DONE.search(normalise(text)))


def steps_done(text: str) -> tuple[int | None, bool]:
    """How many steps a progress report counts, and whether it says everything is done."""
    low = normalise(text)
    if _ALL.search(low):
        return None, True
    if re.search(r"\bstep (?:\d|one|two|three|four|five|six|seven)\b", low):  # "done w step 3" names one step
        return 1, False
    found = _COUNT.search(low)
    if found:
        word = next(g for g in found.groups() if g)
        count = int(word) if word.isdigit() else _WORDS.get(word, 1)
        return max(1, min(count, 7)), False
    return None, False


_TASK_IN_REQUEST = re.compile(
    r"\b(?:break|split|chop|turn)\s+(?:down\s+)?(?P<a>.{2,80}?)\s+(?:down\s+)?(?:into|in)\s+(?:\w+\s+)?(?:small|tiny|"
    r"little|baby|mini|easy|smaller|manageable)?\s?(?:steps|pieces|parts|chunks|bits)\b"
    r"|\b(?:steps|a plan) for\s+(?P<b>[^,.;!?]{2,80})"
    r"|\b(?:start|begin|get started)\s+(?:on|with)\s+(?P<c>[^,.;!?]{2,80})"
    r"|\bhelp (?:me )?(?:with|start|do|get through|tackle)\s+(?P<d>[^,.;!?]{2,80})")
def task_in_request(text: str) -> str | None:
    """The task a request for steps names ("can you break cleaning my room into steps")."""
    found = _TASK_IN_REQUEST.search(normalise(text))
    if not found:
        return None
    return task_phrase(next(g for g in found.groups() if g))
