"""What bothers the senses, in the words people answer a sensory check with ("its the fridge
humming", "the lights in here are so bright", "this jumper is itchy"): the sense it names, so
the companion can suggest the one adjustment that fits instead of another tool."""

from __future__ import annotations

import re

# Checked in order: the first sense named wins ("the music and the lights": noise).
SENSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("noise", re.compile(r"\b(?:loud|noisy?|noises|hum+(?:ing|s)?|buzz\w*|beep\w*|music|tv|telly|traffic|drilling|"
                         r"neighbou?rs?|voices|talking|chatter\w*|shouting|barking|fridge|fan|ticking|typing|"
                         r"construction|sirens?|echo\w*|ringing|clock|keyboard|chewing|sounds?)\b", re.I)),
    ("light", re.compile(r"\b(?:bright|light|lights|lighting|screen|glare|sun|sunlight|flicker\w*|fluorescent|"
                         r"blinding|led)\b", re.I)),
    ("temperature", re.compile(r"\b(?:hot|warm|cold|freezing|chilly|stuffy|sweaty|sweating|boiling|heating|"
                               r"air ?con|humid)\b", re.I)),
    ("hunger", re.compile(r"\b(?:hungry|starving|thirsty|havent eaten|haven't eaten|not eaten|skipped "
                          r"(?:lunch|breakfast|dinner)|no food|dehydrated)\b", re.I)),
    ("touch", re.compile(r"\b(?:itch\w*|scratch\w*|tight|tags?|label|jumper|sweater|jeans|socks?|clothes|shirt|"
                         r"seams?|fabric|wool|uncomfortable clothes)\b", re.I)),
    ("smell", re.compile(r"\b(?:smell\w*|stink\w*|stench|perfume|odou?r|fumes)\b", re.I)),
    ("crowd", re.compile(r"\b(?:crowd\w*|busy (?:room|place|office|train|bus|shop|cafe|street)|too many people|"
                         r"packed|people everywhere)\b", re.I)),
)


# "it's not the noise, it's the lights": a sense named just after a negation is ruled out, not named.
_RULED_OUT = re.compile(r"\b(?:not|no|isn'?t|aren'?t|nothing|never|without)\W+(?:\w+\W+){0,2}$", re.I)


def sense_named(message: str) -> str | None:
    """The sense ``message`` says is bothered (``noise``, ``light``, ``temperature``, ``hunger``,
    ``touch``, ``smell``, ``crowd``), or None."""
    text = message.replace("\u2019", "'")
    for sense, pattern in SENSES:
        if any(not _RULED_OUT.search(text[:found.start()]) for found in pattern.finditer(text)):
            return sense
    return None
