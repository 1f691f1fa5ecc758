"""Safety first: recognising a crisis, and what the companion says then.

Two signals, either one is enough: explicit wording (the patterns below: a miss here
would be unforgivable, so they are broad) and the trained act head's crisis probability
(it carries the indirect forms: "everyone would be better off without me"). Hyperbole
("this homework is killing me", "my phone died") is not a crisis: the patterns only fire
on the person themself or someone in danger, and a laugh after "kill my brother" reads
as a figure of speech unless they say they mean it.

The reply is calm, says plainly that this matters more than any task, gives crisis
resources for the person's country (from their profile's locale or time zone), and keeps
the conversation open. It is never a coaching tool.
"""

from __future__ import annotations

import re

from graphs.understanding.acts import CrisisKind

_SELF = r"(?:my ?self|me)"
_EXPLICIT: tuple[tuple[CrisisKind, str], ...] = (
    (CrisisKind.SUICIDE, r"\b(?:kill|killing|kil|end|ending|off|offing|unalive|unaliving)\s+my ?self\b|\bkms\b"),
    (CrisisKind.SUICIDE, r"\bsuicid\w*\b(?! (?:prevention|awareness|hotline|statistics|squad|rates?))|\bsewer ?slide\b|\bunalive\b|\bctb\b"),
    (CrisisKind.SUICIDE, r"\b(?:thinking|thought|think) (?:about|of) (?:jumping|ending it|dying|killing|how i would do it|"
                         r"doing it|not being here)\b|\bjump(?:ing)? (?:off|from|in front of)\b|\bstep(?:ping)? in front of\b|"
                         r"\b(?:rope|noose)\b.*\b(?:want|do|closet|neck)\b|\bdrive (?:my car )?into a (?:wall|tree|truck)\b"),
    (CrisisKind.SUICIDE, r"\b(?:have|got|counted|saving|saved|stockpil\w*|hoard\w*) (?:up )?(?:the |my |all (?:the |my )?|enough |"
                         r"like \d+ |\d+ )?(?:pills|meds|tablets|sleeping pills)\b(?! (?:for|at|in) (?:my )?(?:adhd|school|work|"
                         r"lunch|breakfast|the morning))|\bhow many \w+ (?:it )?(?:would it take|does it take|would take|it takes|to (?:die|overdose|od))\b|"
                         r"\b(?:meds|pills|tablets) (?:i'?ve|i have) been (?:saving|keeping|hoarding)\b|"
                         r"\btake all (?:of )?(?:my|your) \w+ at once\b|\bi (?:wrote|have written|left) (?:the|a|my) (?:note|letters?)\b"),
    (CrisisKind.SUICIDE, r"\b(?:end|ending|take|taking)\s+(?:it all|my (?:own )?life|my life|everything|things)\b"),
    (CrisisKind.SUICIDE, r"\bend it\b(?!\s+(?:with|early|here|now|for (?:today|tonight)))"),
    (CrisisKind.SUICIDE, r"\b(?:do not|don't|dont|no longer|not) (?:want|wanna|wish) (?:to )?(?:be alive|live|living|"
                         r"exist|existing|be here anymore|be here any ?more|wake up|be around)\b"),
    (CrisisKind.SUICIDE, r"\b(?:want|wanna|wish|ready|plan(?:ning)?|planned) (?:to )?(?:die|be dead)\b(?! (?:of|from|laughing))|"
                         r"\b(?:don't|dont|do not) (?:really )?want to be here anymore\b|\bi just want it all to stop\b|"
                         r"\bgoing deep enough\b|\b(?:not|never|don'?t|won'?t) wake up\b(?! (?:till|until|in time|early|before|on time))"),
    (CrisisKind.SUICIDE, r"\b(?:finish|stop) my (?:own )?life\b|\b(?:going to|gonna|about to|want to|wanna) jump\b|"
                         r"\bwant (?:it|everything|this|it all) (?:all )?to be over\b|\bkys\b|"
                         r"\bi (?:will|am going to|'m going to|'m gonna|am gonna|want to) kill me\b|"
                         r"\b(?:want|wanna) (?:to )?dye\b|\b(?:least painful|painless|easiest|quickest) way to "
                         r"(?:go|die|do it|end it)\b|\bdone with (?:living|life|being alive)\b"),
    (CrisisKind.SELF_HARM, r"\b(?:hitting|banging|bang|hit) my head (?:on|against)\b|\b(?:make|made|making) cuts\b|"
                           r"\bcuts on my (?:arm|wrist|leg|thigh)s?\b"),
    (CrisisKind.HARM_OTHERS, r"\bbringing (?:a )?(?:gun|knife|weapon)s?\b|\bbeat (?:him|her|them) (?:up )?(?:until|till)\b"),
    (CrisisKind.MEDICAL, r"\btook (?:double|twice|triple) (?:my|the|his|her)\b|\b(?:isn'?t|is not|not|won'?t) waking up\b|"
                         r"\btook (?:to|too) many\b|\btook (?:the|a) whole (?:bottle|pack|box|packet)\b"),
    (CrisisKind.SUICIDE, r"\bstep(?:ping)? off (?:the )?(?:platform|edge|ledge|roof|bridge)\b|\bedge of the (?:train )?platform\b|"
                         r"\bdriv(?:e|ing) (?:my car |the car )?into a (?:tree|wall|truck|bridge)\b|"
                         r"\b(?:standing|sitting) on (?:the|a) (?:bridge|ledge|roof|edge)\b|\bleave this world\b|"
                         r"\bjust not (?:be|exist|being) (?:here|anymore|around)?\b|\btired of (?:existing|living|being alive|life)\b|"
                         r"\b(?:didn'?t|don'?t|never) wake up tomorrow\b|\bwon'?t be here (?:for|by|tomorrow|next|much)\b|"
                         r"\b(?:see|imagine) myself (?:being )?(?:around|alive|here) (?:by|in|next)\b|\bburden to\b|"
                         r"\bwaste of (?:space|oxygen|air)\b|\busing up (?:oxygen|air|space)\b|\b(?:the )?quickest ways?\b|"
                         r"\btell (?:her|him|them|my (?:mom|mum|dad|family|parents|sister|brother)) (?:that )?i'?m sorry\b|"
                         r"\b(?:saying|say|said) (?:goodbye|bye) (?:for real|forever|for good)\b|\bonly one i'?m saying goodbye to\b|"
                         r"\bcleaning up before i go\b|\bdeleted all my accounts\b|\bletters? to my (?:family|mom|mum|parents|kids)\b|"
                         r"\blife insurance\b|\b(?:finishing|tying|wrapping) (?:things|everything|loose ends) up\b|\btying up loose ends\b|"
                         r"\bmade my plans?\b|\bdone waiting\b|\bwith everything\b.{0,20}\bdone\b|\bbe done\b.{0,30}\bwith everything\b|"
                         r"\bwant (?:everything|it all|it) to (?:stop|end)\b|\bbus hit me\b|\bmake it official\b|"
                         r"\bdeserve a better (?:mother|father|mom|dad|parent|family|daughter|son)\b|\bbetter (?:off )?without me\b|"
                         r"\b(?:meds|pills|tablets) (?:are )?(?:all )?(?:saved|stashed|hidden) up\b|\bdon'?t wanna be here\b"),
    (CrisisKind.SELF_HARM, r"\b(?:bite|bit|biting) (?:my )?(?:arm|hand|wrist)s?\b.*\b(?:skin|blood|bled|hard)\b|\bbit through\b|"
                           r"\b(?:don'?t|do not) let myself eat\b|\bpunish(?:ing)? myself\b|\bhaven'?t eaten in \d+ days\b|"
                           r"\bcarv(?:e|ing) (?:something |words? )?into\b|\blong sleeves\b.*\b(?:july|summer|hot|again)\b|"
                           r"\bneed (?:it|me) to hurt\b"),
    (CrisisKind.HARM_OTHERS, r"\bwant to kill (?:my|him|her|them)\b|\bbring(?:ing)? (?:my \w+'?s |a |the |my )?(?:gun|knife|weapon)s?\b|"
                             r"\babout to (?:hit|hurt|punch|kill)\b|\bmake (?:her|him|them|everyone|all of them) pay\b|"
                             r"\bshook (?:my|the|our) (?:son|daughter|baby|kid|child)\b|\bputting something in (?:\w+ ){0,2}(?:coffee|food|drink)\b"),
    (CrisisKind.ABUSE, r"\block(?:s|ed)? me in\b|\b(?:takes|took) my (?:money|phone|keys)\b.*\b(?:won'?t let|cannot|can'?t|not allowed)\b|"
                       r"\b(?:he|she|they|dad|mom|mum|husband|wife|bf|gf|partner|boyfriend|girlfriend) (?:\w+ )?(?:pushed|kicked|shoved|"
                       r"slapped|punched|choked) me\b|\bgets (?:really |so )?scary\b"),
    (CrisisKind.MEDICAL, r"\bthroat (?:feels like (?:it'?s|its) |is |feels )?(?:closing|swelling)\b|\bmixed my (?:meds|pills) "
                         r"(?:w|with) (?:alcohol|booze|drink)\b|\bcan'?t feel my (?:hands|legs|face|arms)\b"),
    # Warning signs said indirectly (the ones crisis lines teach people to listen for).
    (CrisisKind.SUICIDE, r"\b(?:nobody|no one|no-one|noone) would (?:even )?(?:notice|care|miss me|mind)\b(?! if i (?:skip|skipped|miss|missed|left|was late|came late|didn'?t go|took))|"
                         r"\b(?:if|when|once) i'?m (?:gone|not around|not here|dead)\b|\bif i (?:disappeared|was gone|were gone|"
                         r"stopped existing|wasn'?t around|weren'?t around)\b|\b(?:disappear|vanish) (?:forever|for good|for real)\b|"
                         r"\bwon'?t be (?:around|here|alive)\b(?! (?:for|at|on|this|next|until|till|tomorrow|later|today|tonight))|"
                         r"\bwon'?t be a (?:problem|burden)\b|\b(?:such a|just a|i'?m a) burden\b|\b(?:giving|gave|give) (?:all )?(?:my|away my) "
                         r"(?:things|stuff|belongings|cat|dog|pets?) (?:away|to)\b|\b(?:see a|no) way out\b(?! of (?!(?:this |my )?life\b))|"
                         r"\b(?:life|living) (?:is|feels) (?:finished|over|pointless|meaningless|not worth)\b|\bno future for me\b(?! (?:in|at|as|with))|"
                         r"\b(?:don'?t|do not) see (?:any|a) (?:tomorrow|future)\b|\bwhat'?s the point (?:of|in) (?:living|life|"
                         r"being alive|going on|existing)\b|\b(?:stop|stopped) existing\b|\b(?:sleep|sleeping) forever\b|"
                         r"\blast time (?:we'?ll|i'?ll|we will|i will) (?:talk|chat|speak)\b(?! (?:today|tonight|this week|for a while|before))|\bthis is goodbye\b|"
                         r"\bgoodbye (?:forever|for good)\b"),
    (CrisisKind.SELF_HARM, r"\b(?:cut|cutting|burned|burnt) again\b|\bneed to feel pain\b|\bdeserve (?:the )?pain\b"),
    # Stroke signs (the FAST check: face, arms, speech) and waking up as a disappointment.
    (CrisisKind.MEDICAL, r"\bface (?:feels |is |went |is going |looks )?(?:droop\w*|lopsided)\b|\bslurr(?:ing|ed)\b|"
                         r"\b(?:words|speech) (?:are |is |keep )?(?:coming out (?:wrong|weird|jumbled)|slurr\w*)\b|"
                         r"\bcan'?t (?:lift|move|feel) my (?:left|right) (?:arm|leg|side)\b"),
    (CrisisKind.SUICIDE, r"\b(?:disappointed|sad|upset|angry|annoyed) (?:that |when )?i (?:woke up|wake up|am still alive|'?m still "
                         r"(?:alive|here)|survived)\b(?! (?:so |too |really )?(?:late|early|at|on time|after|before))|\bif i(?:'m| am) (?:not|no longer) (?:alive|around|here) (?:next|by|in|tomorrow)\b|"
                         r"\blast (?:check[- ]?in|message|time)\b.{0,25}\b(?:forever|for good|ever)\b|\bgoing (?:now,? )?for good\b(?!\s*[\w,])|"
                         r"\bnote (?:i'?m|im|i am) leaving (?:for )?(?:my |me )?(?:parents|mom|mum|dad|family|kids|wife|husband)\b"),
    (CrisisKind.SUICIDE, r"\bwish (?:i|id|i'd) (?:was|were|had) (?:dead|never been born|not born|not alive)\b|"
                         r"\bwish i (?:wasn't|wasnt|weren't) (?:alive|here|born)\b"),
    (CrisisKind.SUICIDE, r"\b(?:better off|be better) (?:dead|without me)\b|\bno (?:reason|point) (?:to|in) (?:live|living|"
                         r"being alive|go on|going on)\b|\bnot worth living\b|\b(?:rather|better) be dead\b"),
    (CrisisKind.SUICIDE, r"\b(?:hang|hanging|drown|drowning|shoot|shooting|poison|poisoning) (?:my ?self)\b|"
                         r"\bjump (?:off|in front of)\b|\bslit (?:my )?wrists?\b|\bsuicide note\b|\bgoodbye note\b"),
    (CrisisKind.SUICIDE, r"\b(?:can't|cant|cannot) (?:go on|keep going) (?:living|like this anymore|anymore)\b|"
                         r"\bdon'?t want to (?:be here|go on) anymore\b"),
    (CrisisKind.SELF_HARM, r"\b(?:cut|cutting|cuts|burn|burning|burned|burnt|hurt|hurting|harm|harming|hit|hitting|"
                           r"punch|punching|scratch|scratching|starve|starving) (?:my ?self|my (?:arm|arms|wrist|wrists|"
                           r"legs?|thighs?|skin))\b"),
    (CrisisKind.SELF_HARM, r"\bself[- ]?harm\w*|\bsh again\b|\brelapsed?\b.*\b(?:cut|cutting|sh|harm)\b|\b(?:blade|razor)s?\b|"
                           r"\b(?:i'?m|im|i am|been|started|start|keep|kept) cutt?ing\b|\bcutt?ing (?:again|tonight|right now)\b|"
                           r"\b(?:want|wanna|urge|urges|going|gonna) (?:to )?cutt?\b(?! (?:the|it|down|back|out|off|up|a|an|this|that|some|"
                           r"my (?:hair|nails|losses|hours)|\w+ing)\b)|\b(?:went|go) (?:straight )?to the bathroom and cut\b|"
                           r"\bcarv\w* into\b|\b(?:reopen\w*|pick\w*) (?:the |my )?(?:cuts|scabs|wounds)\b|"
                           r"\b(?:on purpose|deliberately) so i (?:would |could )?(?:feel|bleed)\b|\buntil (?:it|they) (?:bled|bleeds?)\b|"
                           r"\b(?:bit|bite|biting|hitting|hit|banging|bang|slammed|slam) (?:my )?(?:arm|head|hand|hands|fist)\b.*"
                           r"\b(?:bled|blood|bleed|on purpose)\b|\b(?:scratch\w*|hit\w*|punch\w*) (?:my )?(?:arms?|legs?|head|face|"
                           r"skin)\b.*\b(?:bled|bleed|blood)\b"),
    (CrisisKind.HARM_OTHERS, r"\b(?:stab|stabbing|shoot|shooting|strangle|strangling|choke|choking|poison|poisoning|"
                             r"beat up|hurt|hurting|attack|attacking)\s+(?:him|her|them|someone|somebody|people|everyone|"
                             r"my (?:\w+ ){0,2}?(?:dad|mom|mum|father|mother|brother|sister|teacher|boss|roommate|"
                             r"partner|boyfriend|girlfriend|husband|wife|son|daughter|kid|kids|baby|friend|neighbou?r|"
                             r"classmate|coworker|colleague))\b"),
    (CrisisKind.HARM_OTHERS, r"\b(?:getting|get|grab|grabbing|got|have) (?:the|a|my) (?:knife|gun|bat|hammer)\b|"
                             r"\bwith a (?:bat|knife|gun|hammer)\b|\b(?:plan|planning|planned) (?:to|how to) (?:hurt|kill|attack)\b|"
                             r"\b(?:hurt|kill|attack) the (?:kids|baby|children|people|students)\b|\bi (?:want|wanna) to hurt\b|"
                             r"\b(?:going|gonna) (?:to )?(?:hit|hurt|kill|stab|punch) (?:her|him|them|someone)\b|"
                             r"\bmake (?:\w+ ){0,4}pay\b.*\b(?:plan|all of them|gun|knife)\b|\bput something in (?:\w+ ){0,2}food\b|"
                             r"\b(?:shoved|pushed|hit|slapped|choked) my (?:gf|bf|girlfriend|boyfriend|wife|husband|partner|kid|son|"
                             r"daughter)\b|\b(?:imagining|imagine|fantasi\w*) (?:about )?(?:strangling|killing|stabbing|hurting)\b|"
                             r"\bwant to kill my \w+\b.*\b(?:how to do it|not joking|i mean it|plan)\b"),
    (CrisisKind.HARM_OTHERS, r"\b(?:bring|brought|take|taking|got|have) (?:a )?(?:gun|knife|weapon)s? (?:to|into) "
                             r"(?:school|work|class|the office)\b"),
    (CrisisKind.ABUSE, r"\b(?:he|she|they|dad|mom|mum|father|mother|stepdad|stepmom|stepfather|stepmother|partner|"
                       r"boyfriend|girlfriend|husband|wife|uncle|brother|sister|bf|gf)\s+(?:\w+\s+)?(?:hits|hit|beats|beat|"
                       r"slaps|slapped|punches|punched|kicks|kicked|chokes|choked|strangled|hurts|hurt|burns|burned|"
                       r"threatens|threatened|touches|touched|locks|locked|raped|forces|forced) (?:me|us)\b"),
    (CrisisKind.ABUSE, r"\b(?:not|don't feel|dont feel|never) safe (?:at home|here|with (?:him|her|them))\b|"
                       r"\b(?:scared|afraid|terrified) (?:to go home|of (?:my )?(?:dad|mom|mum|father|mother|stepdad|"
                       r"partner|boyfriend|girlfriend|husband|wife))\b|\babus(?:e|es|ed|ing|ive)\b.*\b(?:me|us|home)\b|"
                       r"\b(?:threatening|following|hurting|hitting) me (?:right )?now\b|\b(?:he|she)'?s? (?:is )?(?:going to|gonna) "
                       r"(?:hurt|kill) (?:me|us)\b(?! (?:for (?:\w+ing|eating|taking)|when (?:she|he) (?:sees|finds out)))|\b(?:gonna|going to) hurt us\b|\bthrew (?:a |the )?\w+ at me\b|"
                       r"\b(?:hitting|beating|hurting|choking) my (?:mom|mum|mother|dad|sister|brother)\b|"
                       r"\bwon'?t let me (?:leave|go out|out of the house)\b|\blocked (?:my ?self|me) in\b|"
                       r"\bbreak (?:the |my )?door down\b|\b(?:followed|following) me\b.*\b(?:scared|afraid|don'?t know)\b|"
                       r"\bhits me\b|\b(?:he|she|they)(?:\'ll| will) (?:kill|hurt) (?:me|us)\b(?! if (?:i|we) (?:forget|don'?t|am late|miss|lose|break))|\bhiding (?:at|in|from)\b.*\b(?:he|she|dad|stepdad|drunk)\b|\bdrunk\b.*\b(?:hurt|hit) (?:me|us)\b"),
    (CrisisKind.MEDICAL, r"\b(?:took|taken|swallowed|ate|had) (?:like |about |around )?(?:\d+|too many|a (?:bunch|lot|"
                         r"handful) of|all (?:of )?my|the whole (?:bottle|pack|box) of|a whole (?:bottle|pack|box) of)"
                         r"\s+(?:\w+\s+){0,3}?(?:pills|tablets|meds|medication|capsules|painkillers|tylenol|paracetamol|"
                         r"ibuprofen|adderall|ritalin|sleeping pills)\b"),
    (CrisisKind.MEDICAL, r"\boverdos\w*\b(?! on (?:coffee|caffeine|sugar|memes|content))|\bod'?d\b|"
                         r"\b(?:can't|cant|cannot) breathe\b|\bchest (?:pain|hurts|is tight and)\b|\bheart attack\b|"
                         r"\b(?:passed out|won'?t wake up|isn'?t breathing|not breathing|unconscious|seizure|"
                         r"fitting on the floor)\b|\bbleeding (?:a lot|badly|heavily|everywhere|won'?t stop)\b|"
                         r"\b(?:throat|tongue) is (?:swelling|closing)\b|\bthroat (?:is )?closing\b|\bhead is bleeding\b|\bfainted\b|"
                         r"\bseeing double\b|\barm is numb\b|\bwon'?t stop bleeding\b|\bso much blood\b|\bdrank (?:something|bleach)\b|"
                         r"\bwhole bottle of\b|\b(?:xanax|fentanyl|oxy|benzos)\b|\btook (?:my |the )?\w+ (?:twice|three times|again)\b"
                         r"|\b(?:too many|way more|more) of my (?:pills|meds)\b|\btook way (?:too many|more)\b|\btook \d+ of (?:my|his|her|the) \w+\b|\bnot answering me\b.*\bbleed"),
)
_PATTERNS = tuple((kind, re.compile(pattern)) for kind, pattern in _EXPLICIT)
# "kill my brother lol", "i'm dead 😂": figurative unless they say they mean it.
_JOKING = re.compile(r"\b(?:lol|lmao|lmfao|haha\w*|jk|jkjk|rofl)\b|[\U0001f602\U0001f923\U0001f480]")
_MEANS_IT = re.compile(r"\b(?:not joking|no joke|i mean it|for real|fr fr|seriously|srsly|not kidding|not lol|actually|"
                       r"i'?m serious|im serious|serious tho|not a joke)\b")
_DENIAL = re.compile(r"\b(?:i'?m not|i am not|im not|not going to|not gonna|i would never|i'?d never|i will never|"
                     r"i'?ll never|never going to)\s+(?:going to |gonna |trying to |planning to |be )?$")
_NEVER_FIGURATIVE = re.compile(r"(?:kill|killing|kil|end|ending|hurt|hurting|cut|cutting|harm|harming) my ?self|"
                               r"suicid|unalive|overdos|\bod'?d\b|(?:end|take|finish) my (?:own )?life|pills|tablets|\bcutt?ing\b")
_FIGURES = re.compile(
    r"\b(?:killing me|kill me now|(?:die|died|dying) (?:of|from) (?:embarrassment|boredom|laughter|shame|cringe)|"
    r"(?:phone|laptop|battery|car|plant|plants|computer|charger|tablet|headphones|wifi|console|pc) (?:is )?"
    r"(?:died|dead|dying)|death of me|dying to|dead tired|(?:i'm|im) dead|killing it|killed it|murdered (?:that|it|the))\b|"
    # someone will be cross ("my mom is gonna kill me when she sees my room"), said laughing or about a chore
    r"\b(?:gonna|going to|will|'ll) (?:kill|murder) me (?:(?:when|if) (?:she|he|they|my \w+) (?:sees?|finds? out|notices?)|"
    r"for (?:\w+ing|eating|taking|borrowing|losing|breaking|forgetting)|because (?:i|my))\b|"
    r"\b(?:strangle|murder|kill|punch) (?:my|him|her|them|this|that)\b.*\b(?:lol|lmao|haha\w*|jk)\b")


# Misspellings that hide the words the patterns look for ("i wnat to die", "hurt myslef").
_TYPOS = {"wnat": "want", "wnt": "want", "watn": "want", "myslef": "myself", "mysef": "myself", "myelf": "myself",
          "mself": "myself", "huting": "hurting", "hurtng": "hurting", "anymre": "anymore", "anymroe": "anymore",
          "anymor": "anymore", "dye": "die", "ded": "dead", "alergic": "allergic", "havign": "having",
          "pils": "pills", "sucide": "suicide", "suicde": "suicide", "sewerslide": "suicide", "kil": "kill"}


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, single spaces, common misspellings of danger words fixed."""
    words = text.replace("\u2019", "'").replace("\u2018", "'").lower().split()
    return " ".join(_TYPOS.get(w, w) for w in words)


def explicit_crisis(text: str) -> CrisisKind | None:
    """The kind of danger a message states outright, if any."""
    low = normalise(text)
    for kind, pattern in _PATTERNS:
        match = pattern.search(low)
        if not match:
            continue
        joking = _JOKING.search(low) and not _MEANS_IT.search(low)
        # Said laughing ("lol", "💀") and without the words that are never a figure of speech, it is left
        # to the trained head, which has seen both kinds: "im gonna jump out the window lol" is a joke.
        if joking and not _NEVER_FIGURATIVE.search(match.group()):
            continue
        # "no i'm not going to hurt myself, just frustrated": a denial right before the words is
        # left to the trained head too (it has seen denials, and it still fires on "not ... but").
        if _DENIAL.search(low[:match.start()]):
            continue
        return kind
    return None


def figurative(text: str) -> bool:
    """Death or harm words used as a figure of speech ("this essay is killing me")."""
    return bool(_FIGURES.search(normalise(text)))


# ---- crisis resources by country --------------------------------------------------------

_EU = {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IT", "LV", "LT", "LU", "MT",
       "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "NO", "CH", "LI"}
_TZ_COUNTRY = {"Europe/London": "GB", "Europe/Belfast": "GB", "Europe/Dublin": "IE", "America/Toronto": "CA",
               "America/Vancouver": "CA", "America/Edmonton": "CA", "America/Winnipeg": "CA", "America/Halifax": "CA",
               "Australia/Sydney": "AU", "Australia/Melbourne": "AU", "Australia/Brisbane": "AU",
               "Australia/Perth": "AU", "Australia/Adelaide": "AU", "Pacific/Auckland": "NZ"}


def country_of(locale: str | None, timezone: str | None) -> str | None:
    """An ISO country code from a locale ("en-GB", "de_DE") or, failing that, a time zone."""
    if locale:
        parts = re.split(r"[-_]", locale.strip())
        if len(parts) >= 2 and len(parts[-1]) == 2 and parts[-1].isalpha():
            return parts[-1].upper()
    if timezone:
        if timezone in _TZ_COUNTRY:
            return _TZ_COUNTRY[timezone]
        if timezone.startswith(("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
                                "America/Phoenix", "America/Anchorage", "Pacific/Honolulu", "US/")):
            return "US"
        if timezone.startswith("Europe/"):
            return "EU"
    return None


def resources(country: str | None) -> str:
    """Who to contact now, for the person's country."""
    if country == "US":
        return ("You can call or text 988 (the Suicide & Crisis Lifeline, free, 24/7). "
                "If you are in immediate danger, call 911.")
    if country == "CA":
        return "You can call or text 9-8-8 (free, 24/7). If you are in immediate danger, call 911."
    if country in ("GB", "IE"):
        emergency = "999" if country == "GB" else "112 or 999"
        return (f"You can call Samaritans on 116 123 (free, 24/7). If you are in immediate danger, call {emergency}.")
    if country == "AU":
        return "You can call Lifeline on 13 11 14 (24/7). If you are in immediate danger, call 000."
    if country == "EU" or country in _EU:
        return ("If you are in immediate danger, call 112 (the emergency number across Europe). "
                "You can find a free helpline in your country at findahelpline.com.")
    return ("If you are in immediate danger, call your local emergency number (911 in the US, 999 in the UK, "
            "112 in Europe). You can find a free helpline in your country at findahelpline.com.")


_OPENING: dict[CrisisKind, str] = {
    CrisisKind.SUICIDE: "I'm really glad you told me. Your safety matters more than any task right now.",
    CrisisKind.SELF_HARM: "Thank you for telling me. You deserve care, and your safety matters more than any task.",
    CrisisKind.HARM_OTHERS: ("Thank you for telling me. Please put some distance between you and the person, "
                             "and anything that could hurt someone, right now."),
    CrisisKind.ABUSE: "I'm so sorry. No one should hurt you, and it is not your fault. Your safety comes first.",
    CrisisKind.MEDICAL: "This could be a medical emergency. Please call emergency services now.",
}
_HUMAN = ("Please reach out to someone who can help right now, like a crisis line or a person you trust. "
          "I'm an app, not an emergency service, but I'm still here with you.")


def safety_reply(kind: CrisisKind | None, country: str | None) -> str:
    """The calm safety reply: acknowledgement, resources for their country, a person to reach."""
    return f"{_OPENING.get(kind or CrisisKind.SUICIDE)} {resources(country)} {_HUMAN}"


# --- the safety check ------------------------------------------------------------------------
# A crisis the explicit patterns did not see, only the classifier, is asked about directly
# rather than answered as certain: "are you safe right now?" with the same resources. On
# everyday struggles that touch medicines, bodies or dark-sounding words the classifier raises
# false alarms (11 % of corpus/everyday_heldout_4.jsonl's safe messages); lowering them cost
# held-out crisis recall (corpus/README.md), so the alarm stays as sensitive and is made cheap:
# a person who says they are safe goes back to coaching, a person who says nothing of the kind
# still got the resources, and an explicit crisis never gets the question, only the safety reply.

# One question whatever the kind, so "no" always means "not safe" (as apps with an SOS check ask it).
_CHECK = "I want to check I've understood you: are you safe right now?"
_CHECK_OPEN = ("If you're okay and I read too much into it, just tell me and we'll carry on with what "
               "you're dealing with.")

#: "I'm safe", "no I'm fine, just forgetful", "not like that", "false alarm": the person says the
#: alarm was wrong. Hand-written: it is asked once, right after the question, and a wrong
#: all-clear only returns the conversation to coaching (the resources were given already).
_DENIED = r"(?:suicidal|in danger|at risk|going to hurt|gonna hurt|going to do anything|gonna do anything)"
_ALL_CLEAR = re.compile(
    r"\b(?:i'?m|im|i am|we'?re|we are|all)\s+(?:totally |completely |really )?"
    r"(?:safe|ok|okay|fine|alright|all right|good)\b|"
    r"^(?:(?:yes|yeah|yep|yup|ya|yh|y),? )?(?:i'?m |im )?safe\b|"
    rf"\b(?:not|no) (?:an? )?(?:emergency|danger|crisis)\b|\bnot {_DENIED}\b|\bfalse alarm\b|\bnot like that\b|"
    r"\bnothing (?:like that|serious|bad)\b|\ball good\b|\bjust (?:forgetful|venting|stressed|tired|annoyed|frustrated)\b")
#: "no", "not really no", "i'm not ok", "i don't feel safe", "i'm scared", "not sure": not an all-clear.
_NOT_CLEAR = re.compile(
    r"\b(?:not|never|isn'?t|aren'?t|don'?t feel|do not feel|dont feel)\s+(?:really |very |so |that |at all )?"
    r"(?:safe|ok|okay|fine|alright|all right|good)\b|"
    rf"\b(?:i'?m|im|i am) not\b(?! {_DENIED})|\b(?:scared|afraid|terrified)\b|"
    r"\b(?:don'?t|dont|do not) think so\b|\bnot sure\b|\bidk\b|\bi don'?t know\b")
_NO = re.compile(r"^(?:no+|nope|nah|n|not really|not at all)(?:[\s,.!]+(?:no+|nope|not really|not at all|not))*[\s.!]*$")


def safety_check_reply(country: str | None) -> str:
    """The direct question for a crisis only the classifier saw: are you safe, the resources,
    and the way back to coaching."""
    return f"{_CHECK} {resources(country)} {_CHECK_OPEN}"


_AFTER = ("Thank you for telling me. What you said a moment ago matters, so I'm not going to rush past it.")
_AFTER_OPEN = ("We can just talk, or take things slowly: no task matters more than you right now. "
               "I'm an app, not an emergency service, but I'm here.")


def after_crisis_reply(country: str | None) -> str:
    """The turn after the safety reply to a crisis said plainly: no coaching yet, the resources
    again, and room to talk ("im fine" right after "i want to die" is not a cue for a task)."""
    return f"{_AFTER} {resources(country)} {_AFTER_OPEN}"


def not_safe(text: str) -> bool:
    """Whether a reply to the safety check says they are not safe ("no", "i'm not ok", "not really")."""
    low = normalise(text)
    return bool(_NO.match(low) or _NOT_CLEAR.search(low)) and not all_clear(text)


def all_clear(text: str) -> bool:
    """Whether a reply to the safety check says they are safe (and nothing in it says otherwise)."""
    low = normalise(text)
    return bool(_ALL_CLEAR.search(low)) and not _NOT_CLEAR.search(low) and explicit_crisis(text) is None
