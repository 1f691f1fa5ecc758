"""Reading one message: the trained heads, the safety gate and the few rules, combined.

Order matters. A crisis is checked first and ends the reading (no other act counts then).
Then the act heads decide; rules add explicit requests and plan questions the heads may
miss on odd spellings; the sign of the last suggestion's outcome is settled only when the
sign head is sure (threshold tuned on validation so a wrong sign is rare), is ``unclear``
when the message looks like an answer but the head is unsure (the graph may ask once), and
``none`` otherwise. A wrong settlement teaches the memory the wrong thing; doubt settles nothing.
"""

from __future__ import annotations

import re

import numpy as np

from graphs.understanding import features, rules, safety
from graphs.understanding.acts import Act, CrisisKind, Question, Request, Sign, Understanding
from graphs.understanding.encoder import UnderstandingEncoder, shared_encoder
from graphs.understanding.heads import Heads, WeightsMissing, load_heads

#: Default thresholds; the shipped weights carry the ones tuned on the validation split.
DEFAULT_THRESHOLDS = {"crisis": 0.5, "crisis_figurative": 0.9, "crisis_near": 1.0, "settle": 0.8, "polarity": 0.85,
                      "unclear": 0.5, "also": 0.6,
                      "distress": 0.5}
_YES = re.compile(r"^(?:y|ya|yah|yea|yeah|yep|yup|yes|yess+|ye|sure|kinda|kind of|a bit|a little|somewhat|"
                  r"it did|definitely|totally|for sure|i think so|👍|✅|mhm|uh huh)\b")
_NO = re.compile(r"^(?:n|no|nah|nope|naw|not really|nop|not at all|no it didn'?t|it didn'?t|meh no|👎|❌|uh uh)\b")


def danger_gate(p_crisis: float, near: float, figurative: bool, th: dict[str, float]) -> bool:
    """Whether the danger head or the neighbour score calls a message a crisis (the explicit
    safety rules are checked apart). A figure of speech ("this essay is killing me") needs both:
    the head very sure and the message among the crises, not among the figures of speech."""
    if figurative:
        return p_crisis >= th["crisis_figurative"] and near >= th["crisis_near"]
    return p_crisis >= th["crisis"] or near >= th["crisis_near"]


class UnderstandingReader:
    """Reads messages with the shipped heads (see the module docstring)."""

    def __init__(self, heads: Heads | None = None, encoder: UnderstandingEncoder | None = None) -> None:
        self.heads = heads or load_heads()
        self.thresholds = {**DEFAULT_THRESHOLDS, **self.heads.thresholds}
        #: What embeds a message for the heads (the tuned MiniLM branch, graphs/understanding/encoder.py).
        self.encoder = encoder or shared_encoder()
        trained_on = self.heads.meta.get("embedding")
        if heads is None and trained_on != self.encoder.model_id:
            raise WeightsMissing(f"the understanding heads were trained on {trained_on}, the encoder is "
                                 f"{self.encoder.model_id}: run `sam2voice train understanding`")

    def read(self, text: str, vector: list[float] | np.ndarray, *, answering_check: bool = False,
             classifier_danger: bool = True) -> Understanding:
        """How to understand ``text`` (its embedding is ``vector``).

        ``answering_check``: the companion just asked "did that help?", so a bare yes/no is the answer.
        ``classifier_danger`` False: the person said they are safe when asked about this message
        (``safety.all_clear``), so only the explicit patterns can still make it a crisis."""
        low = rules.normalise(text)
        if low in rules.COMMANDS:
            return Understanding(act=Act.OUTCOME, confidence=1.0, sign=rules.COMMANDS[low], sign_confidence=1.0,
                                 source="command")
        probs = self.heads.read(np.asarray(vector, dtype=np.float32), text)
        act_p = probs["act"]
        th = self.thresholds
        scores = {k: round(v, 4) for k, v in act_p.items()}
        kind = safety.explicit_crisis(text)
        p_crisis = probs["danger"]["crisis"]
        model_crisis = classifier_danger and danger_gate(p_crisis, probs["neighbours"]["crisis"],
                                                         safety.figurative(text), th)
        if kind is not None or model_crisis:
            if kind is None:
                kind = CrisisKind(max(probs["crisis_kind"], key=probs["crisis_kind"].__getitem__))
            return Understanding(act=Act.CRISIS, confidence=max(p_crisis, 1.0 if kind else 0.0), crisis=True,
                                 crisis_kind=kind, source="rule" if safety.explicit_crisis(text) else "classifier",
                                 scores=scores)
        ranked = sorted((a for a in act_p if a != Act.CRISIS.value), key=act_p.__getitem__, reverse=True)
        act = Act(ranked[0])
        also = [Act(a) for a, p in sorted(probs["also"].items(), key=lambda kv: -kv[1])
                if p >= th["also"] and a not in (act.value, Act.CRISIS.value)]
        if max(act_p, key=act_p.__getitem__) == Act.CRISIS.value and act_p[Act.CRISIS.value] >= th["distress"]:
            # It sounds like danger but the gate says it is not ("wound up about the ward round,
            # stomach in knots"): distress, so a moment to help with. A runner-up "how it went" stays
            # as a second act, so "nah still panicking" still settles the last suggestion.
            runner_up, act = act, Act.STRUGGLE
            also = [a for a in also if a is not Act.STRUGGLE]
            if runner_up in (Act.OUTCOME, Act.PROGRESS):
                also.append(runner_up)
        source = "classifier"
        if act is Act.QUESTION and len(ranked) > 1 and not rules.sounds_like_a_question(text) \
                and rules.question_by_rule(text) is None:
            # The heads heard a question in a statement ("i forgot my meds again" read as "what's my
            # plan?"): it is the runner-up act, told, not asked (a request only in a request's words).
            told = [Act(a) for a in ranked[1:] if a != Act.REQUEST.value or rules.request_by_rule(text)]
            # Forgetting again is the struggle itself (ADHD's most common one), not a report on the last try.
            act, source = (Act.STRUGGLE if rules.FORGOT.search(text) else told[0]), "rule"
            also = [a for a in also if a is not act]
        request = rules.request_by_rule(text)
        question = rules.question_by_rule(text) if request is None else None
        if request is not None:
            if act in (Act.STRUGGLE, Act.GREETING, Act.OFF_TOPIC, Act.QUESTION):
                also = [a for a in [act, *also] if a not in (Act.REQUEST, Act.QUESTION, Act.GREETING, Act.OFF_TOPIC)]
                act, source = Act.REQUEST, "rule"
            elif act is not Act.REQUEST and Act.REQUEST not in also:
                also.append(Act.REQUEST)
        elif question is not None:
            # "show me my plan" asks about the plan, it requests no new one (nor a second act saying so)
            if act in (Act.STRUGGLE, Act.GREETING, Act.OFF_TOPIC, Act.REQUEST):
                act, source = Act.QUESTION, "rule"
            also = [a for a in also if a is not Act.REQUEST]
        if act is Act.REQUEST or Act.REQUEST in also:
            request = request or Request(max(probs["request"], key=probs["request"].__getitem__))
        if act is Act.QUESTION or Act.QUESTION in also:
            question = question or Question(max(probs["question"], key=probs["question"].__getitem__))
        # "better" as a standard they fall short of ("should be better than this"), with no success said.
        hard_on_self = rules.falls_short(text) and not rules.says_it_helped(text)
        sign, sign_p = self._sign(text, low, act, also, probs["sign"], probs["polarity"]["helped"], answering_check,
                                  hard_on_self=hard_on_self)
        if act in (Act.OUTCOME, Act.PROGRESS) and sign is not Sign.NOT_HELPED and hard_on_self:
            # "should be better than this at my age honestly" is someone being hard on themselves:
            # a moment to help with, never a win to celebrate.
            act, sign, sign_p, source = Act.STRUGGLE, Sign.NONE, 1.0, "rule"
            also = [a for a in also if a not in (Act.OUTCOME, Act.PROGRESS, Act.STRUGGLE)]
        if act is Act.STRUGGLE and Act.PROGRESS in also and not rules.says_done(text):
            # A struggle that only sounds like a report ("another 40 pages to read and im frozen
            # again") tells of no progress; one that says what got done ("did step one but...") does.
            also = [a for a in also if a is not Act.PROGRESS]
        steps, all_done = (None, False)
        if act is Act.PROGRESS or Act.PROGRESS in also:
            steps, all_done = rules.steps_done(text)
        task = rules.task_in_request(text) if request in (Request.STEPS, None) else None
        return Understanding(act=act, also=also, confidence=round(act_p[act.value], 4), sign=sign,
                             sign_confidence=round(sign_p, 4), steps=steps, all_done=all_done,
                             request=request if (act is Act.REQUEST or Act.REQUEST in also) else None,
                             question=question if (act is Act.QUESTION or Act.QUESTION in also) else None,
                             task=task, source=source, scores=scores)

    def _sign(self, text: str, low: str, act: Act, also: list[Act], p: dict[str, float], polarity: float,
              answering_check: bool, *, hard_on_self: bool = False) -> tuple[Sign, float]:
        th = self.thresholds
        if answering_check and len(low.split()) <= 6:
            if _NO.match(low) or rules.says_it_failed(text):
                return Sign.NOT_HELPED, 1.0
            if _YES.match(low):
                return Sign.HELPED, 1.0
        failed = rules.says_it_failed(text)
        helped, not_helped = p[Sign.HELPED.value], p[Sign.NOT_HELPED.value]
        about_it = act in (Act.OUTCOME, Act.PROGRESS) or Act.OUTCOME in also or Act.PROGRESS in also
        if about_it:
            # The act head says it is about the suggestion; the sign head need only say which way.
            if failed:
                return Sign.NOT_HELPED, max(not_helped, 0.9)
            unclear = p[Sign.UNCLEAR.value]
            # "Now I'm overwhelmed by the noise" is shaped like "now I'm calmer": a success that
            # sounds clearly negative, with no word of success in it, is not settled as one.
            tone = features.compound(text)
            sounds_bad = tone <= -0.3 and not rules.says_it_helped(text)
            sounds_good = tone >= 0.3 and not failed
            if hard_on_self:
                return Sign.UNCLEAR, 1.0 - p[Sign.NONE.value]
            if polarity >= th["polarity"] and helped >= unclear and not sounds_bad:
                return Sign.HELPED, helped
            if polarity <= 1 - th["polarity"] and not_helped >= unclear and not sounds_good:
                return Sign.NOT_HELPED, not_helped
            if (act is Act.PROGRESS or rules.says_it_helped(text)) and polarity >= 0.5 and not sounds_bad:
                return Sign.HELPED, helped
            return Sign.UNCLEAR, 1.0 - p[Sign.NONE.value]
        best = max(p, key=p.__getitem__)
        if failed and not_helped >= th["unclear"] / 2:
            return Sign.NOT_HELPED, max(not_helped, 0.9)
        if best in (Sign.HELPED.value, Sign.NOT_HELPED.value) and p[best] >= th["settle"]:
            return Sign(best), p[best]
        return Sign.NONE, p[Sign.NONE.value]
