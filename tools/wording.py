"""Small text helpers the rule-based fallbacks use to talk about the person's own words."""

from __future__ import annotations

import re

# First person -> second person, for echoing a person's words back to them.
_SWAP = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "am": "are",
    "i'm": "you're", "i've": "you've", "i'll": "you'll", "i'd": "you'd", "was": "were",
}
_WORD = re.compile(r"[A-Za-z']+")
_FILLER = re.compile(
    r"^(?:(?:ok(?:ay)?|so|um+|uh+|well|hey|please)[,\s]+)*"
    r"(?:i\s+(?:really\s+)?(?:need|have|want|ought|got|must|should|gotta|am going|'m going|'m trying|am trying)"
    r"(?:\s+to)?\s+|i've\s+got\s+to\s+|help\s+me(?:\s+to)?\s+|can\s+you\s+help\s+me(?:\s+to)?\s+)?",
    re.IGNORECASE,
)
_LOWER_STARTS = {"you", "your", "you're", "you've", "you'll", "you'd", "nobody", "no", "no-one", "everyone",
                 "everybody", "everything", "nothing", "it", "it's", "this", "that", "things", "people", "all",
                 "always", "never", "just", "finally", "got", "did", "made", "finished", "started"}
_NOUN_STARTS = {"your", "the", "a", "an", "this", "that", "these", "those", "our", "his", "her", "their", "some", "all"}


def second_person(text: str) -> str:
    """``text`` with first-person words turned to second person (``my essay`` -> ``your essay``).

    ``was`` only changes after ``I`` so that ``it was late`` stays as it is.
    """
    out: list[str] = []
    last = ""
    for piece in re.split(r"([A-Za-z']+)", text):
        low = piece.lower()
        if _WORD.fullmatch(piece) and low in _SWAP and (low not in ("was", "am") or last == "i"):
            swapped = _SWAP[low]
            # "I" is upper case anywhere; only a sentence-initial one gives "You".
            start = not "".join(out).strip() or "".join(out).rstrip()[-1] in ".!?"
            piece = swapped.capitalize() if piece[0].isupper() and (low != "i" or start) else swapped
        if _WORD.fullmatch(piece):
            last = low
        out.append(piece)
    return "".join(out)


def echo(text: str) -> str:
    """The person's words said back to them mid-sentence: second person, no end punctuation,
    ``You can't ...`` -> ``you can't ...`` (names keep their capital)."""
    said = second_person(" ".join(text.split()).replace("\u2019", "'")).rstrip(" .!?")
    if said and said.split(maxsplit=1)[0].lower() in _LOWER_STARTS:
        said = said[0].lower() + said[1:]
    return said


def clean_task(task: str) -> str:
    """The task as a short phrase in the second person: ``I need to clean my room.`` ->
    ``clean your room``. Falls back to the trimmed input when nothing is left."""
    text = " ".join(task.split()).strip(" .!?")
    stripped = _FILLER.sub("", text, count=1).strip(" .!?") or text
    phrase = second_person(stripped)
    if phrase[:1].isupper() and phrase[1:2].islower():  # "Clean ..." but not "I ..." or "NASA ..."
        phrase = phrase[0].lower() + phrase[1:]
    return shorten(phrase, 90)


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut or text[:limit]).rstrip(" ,;:-")


def split_task(phrase: str) -> list[str]:
    """The separate parts of a task phrase: on commas, semicolons and ``then``, and on
    ``and`` when both sides are more than one word (``wash and dry the dishes`` stays whole)."""
    parts: list[str] = []
    for chunk in re.split(r"\s*(?:[,;]|\band then\b|\bthen\b)\s*", phrase):
        chunk = re.sub(r"^(?:and|or)\s+", "", chunk.strip())
        if not chunk:
            continue
        halves = re.split(r"\s+and\s+", chunk)
        if len(halves) > 1 and all(len(h.split()) > 1 for h in halves):
            parts.extend(halves)
        else:
            parts.append(chunk)
    return parts


def is_noun_phrase(phrase: str) -> bool:
    """Whether a task phrase names a thing (``your essay``) rather than an action (``write it``)."""
    words = phrase.lower().split()
    if not words:
        return False
    # A gerund ("cleaning your room") or a lone word ("laundry") is used like a thing.
    return words[0] in _NOUN_STARTS or (words[0].endswith("ing") and len(words[0]) > 4) or len(words) == 1


def as_gerund(phrase: str) -> str | None:
    """An action as a thing to ask about: ``clean your room`` -> ``cleaning your room`` (None when the
    first word is not a verb lemminflect knows). A lexicon, not suffix rules: English doubles and drops
    letters irregularly (plan -> planning, write -> writing, tidy -> tidying, see -> seeing)."""
    from lemminflect import getInflection

    first, _, rest = phrase.strip().partition(" ")
    forms = getInflection(first.lower(), tag="VBG", inflect_oov=False) if first else ()
    return f"{forms[0]} {rest}".strip() if forms else None


def sentence(text: str) -> str:
    """``text`` with a capital first letter."""
    return text[:1].upper() + text[1:]


_LEADING_VERB = re.compile(r"^(?:do|doing|start|starting|finish|finishing|tackle|tackling|get|getting|write|work on|"
                           r"working on|deal with|dealing with|sort out|sorting out|the task of)\s+", re.IGNORECASE)
_TRAILING = re.compile(r"\s+(?:for me|please|pls|plz|today|tonight|now|right now|rn|again|so i can start|"
                       r"because|cause|cuz|bc|since|but|and then|it's|its|lol|lmao|ugh|haha)\b.*$", re.IGNORECASE)
_NOT_A_TASK = {"it", "this", "that", "stuff", "things", "anything", "something", "everything", "me", "myself"}
MAX_TASK_WORDS = 5  # a name, not a quote: never long enough to parrot the person

# What someone may say they want when things are very dark ("i want to disappear", "i just want to
# not wake up"): never a task to make steps for, remind of or check in about.
_DARK = re.compile(
    r"^(?:just\s+|really\s+)?(?:die|dying|be dead|disappear\w*|vanish\w*|(?:kill|hurt|harm) (?:myself|me)\b|"
    r"cut (?:myself|me|my (?:arms?|wrists?|legs?|thighs?|skin))\b|"
    r"end(?: it| my life| myself| everything| things)\b|end$|"
    r"give up(?: on (?:life|everything|myself))?$|"
    r"stop (?:existing|living|being here|breathing)|not (?:be (?:here|alive|around)|exist|wake|live|be)\b|"
    r"sleep (?:forever|and never)|run away(?: forever)?$|leave (?:forever|this world)|overdose|jump off|hang myself|"
    r"drown|be gone|go away forever|exist\w*|(?:live|be alive)(?: anymore| any more| like this)?$)", re.IGNORECASE)


def task_phrase(raw: str) -> str | None:
    """A named task as a short noun phrase in the second person ("do my laundry" -> "your laundry");
    None for no task, and never for what someone wants at their darkest."""
    if _DARK.match(" ".join(raw.split()).strip(" .,!?")):
        return None
    phrase = _TRAILING.sub("", " ".join(raw.split()).strip(" .,!?")).strip(" .,!?")
    phrase = _LEADING_VERB.sub("", re.sub(r"^(?:on|with|about)\s+", "", phrase))
    phrase = re.sub(r"^(?:this|that)\s+", "", phrase, flags=re.IGNORECASE) if len(phrase.split()) > 1 else phrase
    if not phrase or phrase.lower() in _NOT_A_TASK:
        return None
    phrase = second_person(phrase)
    words = phrase.split()
    if len(words) > MAX_TASK_WORDS:
        return None
    return phrase[0].lower() + phrase[1:] if phrase[:1].isupper() and phrase[1:2].islower() else phrase
