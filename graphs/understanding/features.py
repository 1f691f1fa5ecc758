"""Lexical features of a message, hashed, for the understanding heads.

The turn's sentence embedding carries meaning, but MiniLM barely sees negation ("that
helped" and "that did not help" sit close together) and knows little of chat spelling.
So the heads also get a bag of words and word pairs in which every word inside a
negation's scope is marked (``not_help``), plus character 4-grams that survive typos
("halpd"). Features are hashed (crc32, stable across processes) into a fixed number of
buckets: no vocabulary file to ship, and unseen words still land somewhere.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

BUCKETS = 1 << 14
SENTIMENT_WEIGHT = 0.6  # next to the L2-normalised bag of words
# VADER (a lexicon with negation, intensifiers, slang and emoji) gives how positive or negative a
# message sounds: the strongest single hint of which way "how did it go" went. ~15 µs a message.
_VADER = SentimentIntensityAnalyzer()
# VADER was built on social media posts: a few words of this domain carry another weight here
# ("overwhelmed" is +0.2 in its lexicon, "helped" and "unstuck" are missing).
_VADER.lexicon.update({
    "overwhelmed": -2.3, "overwhelming": -2.0, "frozen": -1.8, "spiraling": -2.2, "spiralling": -2.2,
    "overloaded": -2.0, "fried": -1.2, "procrastinating": -1.2, "scrolling": -0.8, "stuck": -1.6,
    "shutdown": -1.8, "meltdown": -2.2, "unstuck": 1.8, "productive": 1.6, "manageable": 1.4, "helped": 1.6,
    "worked": 1.0, "relieved": 1.8, "doable": 1.4,
})
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[\U0001f300-\U0001faff\u2600-\u27bf]|[?!]")
# Words that turn what follows around; "n't" forms are caught by their ending.
_NEGATORS = frozenset("""not no never nothing nah nope neither nor without barely hardly none cannot cant dont
didnt doesnt isnt wasnt wont wouldnt couldnt shouldnt aint havent hasnt hadnt arent werent nobody""".split())
_SCOPE_ENDS = frozenset("but though although however yet and then so because cause cuz ? !".split())
SCOPE_WORDS = 3
# Spelling people use in chat, folded so the embedding-free features agree ("didnt" = "didn't").
_FOLD = {"u": "you", "ur": "your", "r": "are", "pls": "please", "plz": "please", "thx": "thanks", "ty": "thanks",
         "im": "i'm", "ive": "i've", "idk": "i don't know", "rn": "right now", "tho": "though", "bc": "because",
         "cuz": "because", "w": "with", "wanna": "want to", "gonna": "going to", "gotta": "got to", "ok": "okay",
         "k": "okay", "kk": "okay", "nvm": "never mind", "abt": "about", "smth": "something", "sth": "something"}


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, single spaces."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").lower().split())


def tokens(text: str) -> list[str]:
    """Words of a normalised message, chat spellings folded, negation scopes marked ``not_``."""
    raw: list[str] = []
    for token in _TOKEN.findall(normalise(text)):
        raw.extend(_FOLD.get(token, token).split())
    out: list[str] = []
    scope = 0
    for token in raw:
        bare = token.replace("'", "")
        if bare in _NEGATORS or token.endswith("n't"):
            out.append("NEG")
            scope = SCOPE_WORDS
            continue
        if token in _SCOPE_ENDS:
            scope = 0
            out.append(token)
            continue
        out.append(f"not_{token}" if scope else token)
        scope = max(scope - 1, 0)
    return out


def _bucket(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) % BUCKETS


def lexical(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Hashed feature indices and weights (L2-normalised) of one message."""
    words = tokens(text)
    feats = [f"w:{w}" for w in words]
    feats += [f"b:{a}_{b}" for a, b in zip(["<s>", *words], [*words, "</s>"], strict=True)]
    for word in words:  # character 4-grams per word, marked inside a negation like the words themselves
        negated = word.startswith("not_")
        padded = f" {word[4:] if negated else word} "
        feats += [f"{'n' if negated else 'c'}:{padded[i:i + 4]}" for i in range(max(len(padded) - 3, 1))]
    n = len(words)
    feats.append("len:" + ("1" if n <= 1 else "2-3" if n <= 3 else "4-8" if n <= 8 else "9-20" if n <= 20 else "21+"))
    if not feats:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    index, counts = np.unique(np.fromiter((_bucket(f) for f in feats), dtype=np.int64), return_counts=True)
    weights = counts.astype(np.float32)
    weights /= np.linalg.norm(weights)
    extra = [(_bucket(f"sent:{name}"), SENTIMENT_WEIGHT * value) for name, value in sentiment(text).items()]
    index = np.concatenate([index, np.array([i for i, _ in extra], dtype=np.int64)])
    return index, np.concatenate([weights, np.array([v for _, v in extra], dtype=np.float32)])


def compound(text: str) -> float:
    """VADER's overall score, -1 (very negative) to 1 (very positive)."""
    return float(_VADER.polarity_scores(text)["compound"])


def sentiment(text: str) -> dict[str, float]:
    """How positive or negative the message sounds, as a few features (the compound score binned)."""
    scores = _VADER.polarity_scores(text)
    compound = scores["compound"]
    band = ("very_negative" if compound <= -0.5 else "negative" if compound <= -0.05 else
            "neutral" if compound < 0.05 else "positive" if compound < 0.5 else "very_positive")
    return {band: 1.0, "pos": scores["pos"], "neg": scores["neg"]}


def dense(texts: list[str]) -> np.ndarray:
    """The lexical features of many messages as a dense matrix (training only)."""
    out = np.zeros((len(texts), BUCKETS), dtype=np.float32)
    for row, text in enumerate(texts):
        index, weights = lexical(text)
        np.add.at(out[row], index, weights)
    return out
