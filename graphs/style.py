"""The coaching reply style, enforced on whatever a chat model said.

Replies are 1-2 short sentences with one tiny step, never judgmental, and for an autistic
user (only when their consented profile says so) literal, with a heads-up before a change of
activity. A small model misses this often, so :func:`enforce_style` cleans its text and falls
back to the graph's draft (always well formed) whenever a rule is broken, saying which.
The heads-up itself is written by the graph (:func:`transition_warning`) into the draft, and
the guard makes sure it is said word for word.
"""

from __future__ import annotations

import re
from collections import Counter

from pydantic import BaseModel, Field

MAX_SENTENCES = 2
MAX_CHARS = 220
MIN_DRAFT_KEPT = 0.34  # share of the draft's content words a reply must keep
MAX_NEW_CONTENT = 0.34  # share of a reply's content words that may come from neither draft nor user
HEADS_UP = "Heads-up:"
# Sentences the graph puts before the reply's step: "Heads-up: ...", "Reminder: ...", "Check-in: ...".
_NOTICE = re.compile(r"\s*(?:heads[- ]?up|reminder|check-in)\b", re.IGNORECASE)
NEUTRAL_REPLY = "I'm here with you. What's one tiny thing we could try next?"

_ROLE_PREFIX = re.compile(r"^\s*(?:assistant|coach|sam|ai|bot|reply|response|answer|draft reply)\s*:\s*", re.IGNORECASE)
_NEXT_TURN = re.compile(r"\n\s*(?:user|human)\s*:", re.IGNORECASE)
_MARKDOWN = re.compile(r"[*_`#>]+|^\s*(?:[-•]|\d+[.)])\s+", re.MULTILINE)
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z\u00c0-\uffff']+")

# Wording that blames or pressures; a coach for ADHD never says these.
_JUDGMENTAL = re.compile(
    r"\b(?:you should have|should've|you shouldn't have|lazy|laziness|why didn't you|why haven't you|why can't you"
    r"|just do it|no excuses?|excuses|failure|you failed|you always|you never|stop being|what's wrong with you"
    r"|pathetic|irresponsible|disappointing|disappointed in you|procrastinator|it's easy|it's simple|obviously"
    r"|come on|get over it|try harder|grow up)\b",
    re.IGNORECASE,
)
# The model speaking as if it were the user ("I'm getting ready to finish my homework").
_AS_USER = re.compile(
    r"\bmy (?:homework|essay|exam|assignment|project|chores|room|laundry|deadline|teacher|boss|task|tasks|work)\b"
    r"|^\s*(?:i'm|i am) (?:getting ready|going to (?:finish|start|do)|trying to|so|feeling|tired|stressed|stuck"
    r"|late|overwhelmed|anxious|bored|not able|behind|scared|worried)\b"
    r"|\bi (?:can't|cannot|don't want to|have to|need to) (?:start|finish|focus|do|get)\b"
    r"|\bi (?:have|had) (?:a |an |my |some )?(?:homework|essay|exam|assignment|deadline|test)",
    re.IGNORECASE,
)
# Topics a companion for possibly young, vulnerable users never brings up by itself.
_UNSAFE = re.compile(
    r"\b(?:wine|beer|alcohol|vodka|drunk|cigarettes?|vape|vaping|drugs?|weed|kill|die|suicide|weapons?|guns?|knife)\b",
    re.IGNORECASE,
)
# Talk about being a model breaks the companion's voice and confuses literal listeners.
_META = re.compile(
    r"\b(?:as an ai|language model|smollm|hugging ?face|i am an ai|i'm an ai|draft reply)\b", re.IGNORECASE
)
# Figurative phrases an autistic listener may take literally.
IDIOMS = tuple(
    (
        "piece of cake|hit the ground running|break a leg|on the ball|beat around the bush|bite the bullet|"
        "under the weather|hit the books|hit the hay|call it a day|in a nutshell|cut corners|"
        "the ball is in your court|get the ball rolling|once in a blue moon|a walk in the park|"
        "let the cat out of the bag|cross that bridge|spill the beans|costs an arm and a leg|on cloud nine|"
        "raining cats and dogs|pull yourself together|keep your chin up|hang in there|knock it out|crush it|"
        "nail it|eat the frog|light at the end of the tunnel|take the plunge|butterflies"
    ).split("|")
)
_IDIOM = re.compile(r"\b(?:" + "|".join(re.escape(idiom) for idiom in IDIOMS) + r")\b", re.IGNORECASE)
_COMMON = frozenset(
    "a an the to and or of in on for with you your i we it is are be can let's lets let me this that one what "
    "how do will would try just now next here minute minutes".split()
)
# Words that carry no step: a reply must share a content word with the draft to count as on topic.
_STOPWORDS = _COMMON | frozenset(
    "about above after again all am any as at because been before being below between both but by could did "
    "does doing don't down during each few from further had has have having he her hers him his if into is isn't "
    "it's its itself more most my myself no nor not off once only other our ours out over own same she so some "
    "such than that's their them then there these they those through too under until up very was wasn't "
    "were what's when where which while who whom why won't you'll you're you've yours yourself yes okay ok "
    "i'm i'll i've we'll we're sure feel feeling great good really thing things time want need get got go going "
    "first small tiny step take make ready start right well there's".split()
)


class StyleProfile(BaseModel):
    """What the reply style adapts to; set from the user's consented profile only."""

    autism: bool = Field(default=False, description="The consented profile says autism: literal words, heads-ups.")
    literal_language: bool = Field(default=False, description="The user asked for literal language (no idioms).")

    @property
    def literal(self) -> bool:
        """Whether figurative language must be avoided."""
        return self.autism or self.literal_language


class StyledReply(BaseModel):
    """The reply to speak, and whether (and why) the model's text was replaced by the draft."""

    text: str = Field(description="The reply to say to the user.")
    used_draft: bool = Field(description="True when the text is the graph's draft rather than the model's wording.")
    reasons: list[str] = Field(default_factory=list, description="Why the model's text was rejected (empty if not).")


def transition_warning(next_activity: str) -> str:
    """A literal heads-up before a change of activity, e.g. "Heads-up: next we will do a breathing exercise."."""
    activity = next_activity.strip().rstrip(".!?") or "something new"
    return f"{HEADS_UP} next we will do {activity}."


def enforce_style(text: str, *, draft: str, profile: StyleProfile, user_message: str = "") -> StyledReply:
    """The model's reply cleaned and cut to style, or ``draft`` (with reasons) when it breaks a rule.

    ``user_message``, when given, lets the guard reject a reply that merely parrots the user.
    A well-formed draft given as ``text`` comes back unchanged.
    """
    draft = draft.strip() or NEUTRAL_REPLY
    cleaned = clean_reply(text)
    if _normalized(cleaned) == _normalized(draft):
        return StyledReply(text=draft, used_draft=True)
    notices, body = _split_notices(draft)
    # Notices (a heads-up, a reminder, a check-in) are what a user relies on: they are said
    # exactly as the draft has them, and the model's own versions of them are dropped.
    own = " ".join(s for s in _SENTENCE_END.split(cleaned) if not _NOTICE.match(s))
    reply, reasons = _cut(own, MAX_SENTENCES - 1 if notices else MAX_SENTENCES)
    reasons += _violations(reply, body or draft, draft, profile, user_message)
    if reasons:
        return StyledReply(text=draft, used_draft=True, reasons=reasons)
    reply = " ".join([*notices, reply])
    return StyledReply(text=reply, used_draft=False)


def clean_reply(text: str) -> str:
    """Model output without role prefixes, a continued dialogue, markdown, emojis or wrapping quotes."""
    text = text.translate(_QUOTES).replace("<|im_end|>", "\n")
    text = _NEXT_TURN.split(text.strip(), maxsplit=1)[0]  # the model went on to write the user's turn
    text = _ROLE_PREFIX.sub("", text.strip())
    lines = [line for line in (_ROLE_PREFIX.sub("", ln) for ln in _MARKDOWN.sub("", text).splitlines()) if line.strip()]
    text = _EMOJI.sub("", lines[0] if lines else "")
    text = re.sub(r"\s+", " ", text).strip()
    if text and text[0] in "\"'" and (text[-1] == text[0] or text.count(text[0]) == 1):
        text = text.strip("\"' ")
    return text


def _cut(text: str, max_sentences: int) -> tuple[str, list[str]]:
    """At most ``max_sentences`` complete sentences within MAX_CHARS; reasons if impossible."""
    if not text:
        return "", ["empty"]
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    if not re.search(r"[.!?][\"')]*$", sentences[-1]):
        sentences.pop()  # cut off by the token limit mid-sentence
    if not sentences:
        return "", ["incomplete sentence"]
    kept: list[str] = []
    for sentence in sentences[:max_sentences]:
        if len(" ".join([*kept, sentence])) > MAX_CHARS:
            break
        kept.append(sentence)
    if not kept:
        return "", ["too long"]
    return " ".join(kept), []


def _violations(reply: str, step: str, draft: str, profile: StyleProfile, user_message: str) -> list[str]:
    reasons = _topic_drift(reply, step, draft, user_message)
    if _gibberish(reply):
        reasons.append("gibberish or not English")
    if match := _AS_USER.search(reply):
        reasons.append(f"speaks as the user: {match.group(0)!r}")
    return reasons + _wording_problems(reply, user_message=user_message, literal=profile.literal)


def _wording_problems(reply: str, *, user_message: str, literal: bool, safety: bool = False) -> list[str]:
    """Judgement, unsafe topics (not for a safety reply), talk of being a model, idioms for a
    literal listener, the person's own words repeated back."""
    problems: list[str] = []
    patterns = [("judgmental wording", _JUDGMENTAL), *([] if safety else [("unsafe topic", _UNSAFE)]),
                ("talks about being a model", _META), *([("idiom for a literal listener", _IDIOM)] if literal else [])]
    for name, pattern in patterns:
        if match := pattern.search(reply):
            problems.append(f"{name}: {match.group(0)!r}")
    said = _normalized(user_message)
    if said.count(" ") >= 3 and f" {said} " in f" {_normalized(reply)} ":
        problems.append("repeats the user's words")
    return problems


#: Problems that make a reply unfit to be shown as an example at all (quality 0).
_DISQUALIFYING = ("judgmental wording", "unsafe topic", "talks about being a model")


def reply_quality(problems: list[str]) -> float:
    """A reply's quality in [0, 1] from ``reply_problems``: 1 with none, 0.25 less for each
    problem of form (length, questions, an idiom, an echo), 0 for judgement, an unsafe topic or
    talk of being a model. Stored with each intervention; few-shot retrieval can require a
    minimum (``MemorySettings.few_shot_min_quality``)."""
    if any(p.startswith(_DISQUALIFYING) for p in problems):
        return 0.0
    return max(0.0, 1.0 - 0.25 * len(problems))


def reply_problems(reply: str, *, user_message: str = "", literal: bool = False, safety: bool = False) -> list[str]:
    """What is wrong with a reply as said, by the guard's rules minus those that need a draft:
    length (1-2 sentences besides notices), more than one question, and the wording rules. A
    safety reply may be long and name danger."""
    problems: list[str] = []
    _, body = _split_notices(reply)
    sentences = [s for s in _SENTENCE_END.split(body) if s.strip()]
    if not safety and (len(sentences) > MAX_SENTENCES or len(body) > MAX_CHARS):
        problems.append(f"too long ({len(sentences)} sentences, {len(body)} characters)")
    if reply.count("?") > 1:
        problems.append(f"{reply.count('?')} questions at once")
    return problems + _wording_problems(reply, user_message=user_message, literal=literal, safety=safety)


def _gibberish(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 2:
        return True
    if sum(not c.isascii() for c in letters) > 0.1 * len(letters):
        return True
    words = [w.lower() for w in _WORD.findall(text)]
    if any(len(w) > 24 for w in words):
        return True
    if any(a == b == c for a, b, c in zip(words, words[1:], words[2:], strict=False)):
        return True
    content = [w for w in words if w not in _COMMON]
    if len(words) >= 8 and content and Counter(content).most_common(1)[0][1] > 0.3 * len(words):
        return True
    return len(words) >= 4 and not any(w in _COMMON for w in words)


def _topic_drift(reply: str, step: str, draft: str, user_message: str) -> list[str]:
    """The wording may change, the content may not: a reply must keep a good part of the content
    words of the draft's ``step`` and add few that are in neither the draft nor the user's message
    (small models drift into unrelated stories)."""
    said, wanted = _content_stems(reply), _content_stems(step)
    if not wanted:
        return []
    reasons = []
    if len(said & wanted) < MIN_DRAFT_KEPT * len(wanted):
        reasons.append("drops the draft's step")
    if len(said - _content_stems(draft) - _content_stems(user_message)) > MAX_NEW_CONTENT * len(said):
        reasons.append("adds content that is not in the draft")
    return reasons


def _content_stems(text: str) -> set[str]:
    # A five-letter prefix is a crude stem that matches "breathe"/"breathing", "wash"/"washing".
    return {w[:5] for w in (w.lower().strip("'") for w in _WORD.findall(text)) if w not in _STOPWORDS and len(w) > 2}


def _split_notices(draft: str) -> tuple[list[str], str]:
    """The draft's notice sentences, and the rest (its step)."""
    notices: list[str] = []
    body: list[str] = []
    for sentence in _SENTENCE_END.split(draft):
        (notices if _NOTICE.match(sentence) else body).append(sentence)
    return notices, " ".join(body)


def _normalized(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()
