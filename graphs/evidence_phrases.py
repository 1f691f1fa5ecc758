"""The vocabulary of evidence: how people tell a coach how the last suggestion went.

Data, not logic (:mod:`graphs.evidence` uses it):

* ``PROTOTYPES``: phrases per outcome and for ``NONE``, embedded once and compared with each
  new message. Written in the voice of ADHD/autistic adults and students talking to a coach;
  short, spoken-style, varied. ``NONE`` holds messages that say nothing about the last
  intervention: new requests, questions, statements of a new situation. The held-out test set
  (``tests/data/evidence_labelled.json``) must not repeat any of them.
* ``CUES``: keyword patterns (regex alternations, matched on whole words of the lower-cased
  message) per outcome, each marked negatable or not, plus the patterns for negations,
  requests, continuations and turns ("but then") that decide how cues count.
"""

from __future__ import annotations

from memories.ranking import Outcome

#: The class key for "no evidence about the last intervention".
NONE = "none"

PROTOTYPES: dict[str, tuple[str, ...]] = {
    Outcome.TASK_COMPLETED.value: (
        "I finished it!",
        "done, essay submitted",
        "it's done",
        "I did it, the whole thing is finished",
        "all done, sent the email",
        "finally handed in the assignment",
        "I completed the report",
        "finished the dishes, kitchen is clean",
        "submitted it just now",
        "the application is sent off",
        "I got it all done",
        "task complete",
        "wrapped it up, that's finished",
        "I cleaned my whole room, it's done",
        "paid the bill, finally",
        "I made the phone call, it's sorted",
        "finished reading the chapter",
        "uploaded the project before the deadline",
        "worksheet done and turned in",
        "I ticked it off my list",
        "booked the appointment, done",
        "I actually finished the laundry",
        "the essay is written and submitted",
        "it's finished, I can't believe it",
    ),
    Outcome.TASK_PROGRESS.value: (
        "I did the first two steps",
        "I've started, wrote a paragraph",
        "I got the first part done",
        "halfway through now",
        "made some progress on it",
        "I opened the document and wrote the title",
        "did one step, working on the next",
        "I've done about a third of it",
        "wrote the intro, still need the rest",
        "I managed to start",
        "got a few emails answered",
        "I put on my shoes and got my bag ready",
        "I sorted out the first pile",
        "read the first two pages",
        "I made a start on the dishes",
        "three questions done, seven to go",
        "I wrote the outline",
        "I've been working on it for ten minutes",
        "got some of it done",
        "I did the first tiny step",
        "slowly getting through it",
        "the timer went off and I did a bit",
    ),
    Outcome.RE_ENGAGED.value: (
        "ok I'm back",
        "feeling calmer, let's keep going",
        "that helped, I'm ready",
        "the breathing helped",
        "I feel a bit better now",
        "okay, I can do this",
        "alright let's do it",
        "I'm calmer now",
        "that actually worked, I feel more focused",
        "good idea, I'll try that",
        "ok I'm ready to start",
        "yeah that makes it feel doable",
        "I feel less overwhelmed now",
        "back at my desk",
        "that's better, my head feels clearer",
        "thanks, that grounded me",
        "ok let's continue",
        "I'm focused again",
        "my heart rate slowed down, I'm ok",
        "the break helped, I'm back on track",
        "yes that sounds manageable",
        "okay I'm in, what's the first step",
    ),
    Outcome.DISTRACTED.value: (
        "I ended up on my phone",
        "got sidetracked watching videos",
        "I was scrolling tiktok for an hour",
        "I got distracted again",
        "fell into a youtube rabbit hole",
        "I started cleaning instead",
        "oops I was on reddit",
        "I lost track of time",
        "I started doing something else",
        "my mind wandered off",
        "I got caught up in a game",
        "I was checking instagram",
        "I zoned out",
        "I hyperfocused on something totally different",
        "I kept checking my messages",
        "I went to get a snack and never came back",
        "ended up reorganising my desk instead",
        "I got pulled into a group chat",
        "I was watching netflix",
        "somehow I'm reading wikipedia now",
        "I drifted off and did nothing",
        "got distracted by the news",
    ),
    Outcome.ABANDONED.value: (
        "that didn't help, I give up",
        "no, forget it, this is useless",
        "I can't do this, I quit",
        "this is pointless",
        "I'm giving up on it",
        "it's not working",
        "forget it",
        "I can't, it's too much, I'm stopping",
        "this isn't helping at all",
        "nope, not doing it",
        "I'm done trying",
        "that made it worse",
        "never mind, I'll just leave it",
        "there's no point",
        "screw it, I'm not doing this today",
        "that was a waste of time",
        "I stopped, I couldn't handle it",
        "it didn't work, I still can't start",
        "I just can't, leave it",
        "breathing doesn't work for me",
        "I gave up on the essay",
        "this is stupid, I'm out",
    ),
    NONE: (
        "I need to clean my room",
        "I'm overwhelmed by my inbox",
        "what time is it?",
        "can you help me start my homework",
        "I have an exam tomorrow",
        "how do I write a cover letter",
        "I have so many things to do today",
        "can you remind me to take my meds",
        "my boss wants the report by friday",
        "I can't get started on my essay",
        "I feel anxious about the meeting",
        "what should I do first",
        "tell me a joke",
        "I keep procrastinating on my taxes",
        "I need to call the doctor but I'm scared",
        "how are you today?",
        "I want to plan my week",
        "my room is a mess",
        "I have to reply to forty emails",
        "hi",
        "can we talk about something else",
        "what's the weather like",
        "I'm hungry",
        "I have a presentation next week",
        "I don't know where to start with the laundry",
        "help me make a schedule",
        "I always get distracted so easily",
        "I keep giving up on things",
        "I'm going to bed",
        "my laptop is broken",
        "I started a new course last month",
        "I never finish anything I start",
    ),
}

#: (outcome, pattern, negatable). A negated cue ("not giving up") counts against its polarity;
#: cues that are themselves negative phrasings ("didn't work", "forget it") are not negatable.
CUES: tuple[tuple[Outcome, str, bool], ...] = (
    (Outcome.TASK_COMPLETED,
     r"(?<!almost )(?<!nearly )finish(?:ed)?|completed?|submitted|handed (?:it )?in|turned (?:it )?in"
     r"|sent (?:it|off)|posted it|all done|got it done|did it|nailed it|whole thing|everything on"
     r"|(?:did|got|wrote|read|cleaned|answered|replied to|sent|washed) (?:the whole|all|every|everything)"
     r"|sorted|off my (?:plate|list)|ticked (?:it )?off|wrapped (?:it )?up"
     # "halfway done" is progress; "done with this / being / trying" is giving up or a new topic
     r"|(?<!half)(?<!halfway )(?<!partly )(?<!partially )(?<!mostly )(?<!almost )(?<!nearly )done"
     r"(?! trying| with (?:this|that|it all|everything|being|life))", True),
    (Outcome.TASK_PROGRESS,
     r"start(?:ed|ing)|began|begun|made (?:a|some) (?:\w+ )?start"
     r"|first (?:step|part|section|bit|page|few|two|sentence|question)|halfway|half of|part of|partly"
     r"|some of|a bit of|bit done|progress|so far|step (?:one|1|two)|(?:almost|nearly) (?:done|finished|there)"
     r"|part ?way|a (?:couple|few) of (?:the|them|my)|\d+ (?:minutes|words|pages) (?:of|so)"
     r"|(?:one|two|three|four|five|\d+) of (?:the|them|\d+)|working (?:on|through) it|getting through"
     r"|(?:the|my) first \w+|been (?:at it|working|doing it)", True),
    (Outcome.RE_ENGAGED,
     r"i'?m back|back (?:now|at it|on track|at my desk|to it)|calm(?:er|ed)|better|helped|helps|helpful"
     r"|ready|focused|clearer|grounded|settled|doable|manageable|let'?s (?:go|do|try|keep|continue|start)"
     r"|keep going|continue|carry on|i can do (?:this|that|it)|i can handle|good (?:idea|call)"
     r"|(?:that|it|this|exercise|breathing|trick|idea|plan|timer|walk|break) (?:really |actually )?worked"
     r"|less (?:anxious|overwhelmed|stressed|panicky|tense|scared|worried|wound up|frazzled)"
     r"|sounds (?:good|great|doable|manageable|ok(?:ay)?|like a plan)|i'?ll (?:try|start|give it a go)"
     r"|(?:did|does) help|works for me|(?:sitting|sat) down to|back to (?:work|it)|getting on with it"
     r"|(?:more|back) in control|more (?:motivated|relaxed|awake|present)|relaxed", True),
    (Outcome.DISTRACTED,
     # a phone is a distraction when someone is on it, not when it broke
     r"on (?:my|the) phone|(?:check|checked|checking|grabbed|picked up) (?:my |the )?phone|phone again"
     r"|youtube|tiktok|instagram|insta|reddit|twitter|facebook|netflix|discord|snapchat|whatsapp|spotify|podcasts?"
     r"|social media|scrolling|scrolled|daydream(?:ing|ed)?|drifted off|mind drifted"
     r"|side ?tracked|distracted|rabbit hole|lost (?:track|focus)|zoned out|spaced out|wandered|gaming"
     r"|texting|notifications|got (?:lost|sucked|pulled|caught up)|instead|(?:a|video) games?|playing"
     r"|watch(?:ed|ing) (?:tv|a show|a film|a movie|videos?|something|netflix)|forgot (?:about )?(?:it|what)",
     True),
    (Outcome.ABANDONED, r"give up|giving up|gave up|quit(?:ting)?|stopping|i stopped", True),
    (Outcome.ABANDONED,
     r"useless|pointless|hopeless|no point|no use|waste of time|not (?:working|helping)"
     r"|screw (?:it|this)|done trying|not doing (?:it|this|that)|(?:is|was)n'?t (?:working|helping)"
     r"|(?:did|does|do|wo)n'?t (?:help|work)|made (?:it|me feel) worse|i'?m out"
     r"|can'?t do (?:it|this)|forget (?:it|about it|this)|never ?mind|nope|not happening", False),
)

#: Words saying only part of a task is done: with them, "done" or "finished" is progress
#: ("I've done the first problem", "halfway done", "finished some of the dishes").
PARTIAL = (r"\b(?:some of|half(?! an? hour)|halfway|part of|partly|part ?way|a (?:couple|few) of|a bit of|so far"
           r"|(?:the|my) first|(?:one|two|three|four|five|\d+) of (?:the|them|\d+)|step (?:one|1|two))\b")

#: Words saying it is not over ("not done yet"): evidence against a failure.
NOT_OVER = r"\byet\b|\bstill (?:going|working on it|at it|trying)\b"

#: Words that negate a cue when they come shortly before it in the same clause. "no" only
#: negates the word right after it ("no progress"), not a whole reply ("no, forget it").
NEGATOR = (r"\b(?:not|never|without|hardly|barely|nothing|cannot|\w+n't"
           r"|(?:did|do|does|could|ca|wo|was|is|are|were|have|has|had|would|should)nt)\b|\bno$")
#: Phrases that look negative but do not negate ("I can't believe I finished").
NOT_NEGATIONS = r"\b(?:can'?t|couldn'?t) believe\b|\bnot only\b|\bwasn'?t so bad\b|\bdon'?t know how\b"
#: Bare verbs that are cues only when negated ("didn't help", "couldn't start"), never in "help me".
NEGATED_ONLY = r"\b(?:help|work|start|finish|get (?:it|anything) done|focus|calm down|back|able)\b"
#: Clause boundaries: a negation does not reach across them.
CLAUSE = r"[,.;:!?]|\bbut\b|\bthough\b|\bthen\b|\bnow\b|\band\b"
#: Turns in a story: after them comes how it ended ("I started but then got distracted").
TURN = r"\bbut\b|\bthen\b|\bnow\b|\bthough\b|\bafter that\b|\banyway\b|\bin the end\b|\beventually\b"

#: A new request, question or task, a habit, another time: the message is about something new.
NEW_TOPIC = (
    r"\b(?:can|could|would|will) you\b|\bhelp me\b|\bplease\b|\btell me\b|\bremind me\b|\bshow me\b"
    # "I need to stop" after a failed try is giving up; "I need to stop scrolling" is a new goal
    r"|\bi (?:need|have|'ve got|got|want|should|must) to (?!stop\b(?! \w+ing)|quit|rest|take a break)"
    r"|\bi need (?:help|a|an|some)\b|\bhow (?:do|can|should|would) i\b|\bwhat (?:time|day|date|should|can|do i)\b"
    r"|\btomorrow\b|\bnext week\b|\bi forgot to\b|\bhelp with\b|\?"
    r"|\b(?:always|usually|every time|all the time|whenever|in general)\b|\byesterday\b|\bago\b"
    r"|\blast (?:year|month|week|night|term|semester)\b|\bthis (?:week|month|year|term)\b")
#: Asking to go on with the same plan, which is not a new request ("done, what's next?").
CONTINUATION = (r"\bwhat'?s next\b|\bwhat now\b|\bnext (?:step|one|bit|part|thing|task)\b|\bwhat do i do next\b"
                r"|\bwhat (?:is|'s) the (?:first|next) step\b|\bwhere were we\b"
                r"|\b(?:can|shall) we (?:keep going|continue|go on)\b")
