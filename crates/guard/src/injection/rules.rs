//! The heuristic rules of the injection detector: one line per attack family, with a weight.
//!
//! Patterns run over [`crate::normalize`]d text (lower case, folded), so they are written in
//! lower-case ASCII. Weights are combined with a noisy-OR: a strong rule alone crosses the
//! default threshold (0.5), a weak one needs company. Each rule counts once however often it
//! matches; several rules of one family each count.

/// Where a rule applies: direct user input, indirect content (tool results, retrieved
/// documents) or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Both,
    Indirect,
}

pub struct Rule {
    pub name: &'static str,
    pub weight: f32,
    pub scope: Scope,
    pub pattern: &'static str,
}

const fn rule(name: &'static str, weight: f32, pattern: &'static str) -> Rule {
    Rule { name, weight, scope: Scope::Both, pattern }
}

const fn indirect(name: &'static str, weight: f32, pattern: &'static str) -> Rule {
    Rule { name, weight, scope: Scope::Indirect, pattern }
}

pub const RULES: &[Rule] = &[
    // Override the instructions that came before.
    rule(
        "IGNORE_INSTRUCTIONS",
        0.9,
        r"\b(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overriding|bypass|abandon|discard|set aside|pay no attention to|do not follow|don't follow|stop following|no longer follow)\b[^.\n]{0,40}?\b(?:previous|prior|preceding|above|earlier|initial|original|system|all|any|your|these|those|existing|former|given|every)\b[^.\n]{0,30}?\b(?:instructions?|prompts?|directions?|directives?|guidelines?|rules|commands?|orders|programming|guardrails?|constraints?|restrictions?|policies|context)\b",
    ),
    rule(
        "IGNORE_INSTRUCTIONS",
        0.8,
        r"\b(?:ignore|disregard)\b (?:the )?user(?:'s)? (?:question|request|message|prompt|input)\b",
    ),
    rule(
        "IGNORE_INSTRUCTIONS",
        0.85,
        r"\b(?:ignore|disregard|forget)\b(?: (?:all|everything|anything|what|the|that|about))*\s?(?:above|before|previously|prior|earlier|preceding|so far|you (?:were|have been) told|i (?:said|told you))\b",
    ),
    rule(
        "IGNORE_INSTRUCTIONS",
        0.9,
        r"\b(?:ignoriere|ignorieren sie|vergiss|vergessen sie|missachte)\b[^.\n]{0,40}\b(?:anweisungen|instruktionen|befehle|regeln|vorgaben|alles (?:davor|bisherige|vorherige|oben))|\b(?:ignore[sz]?|oublie[sz]?|ne tiens pas compte)\b[^.\n]{0,40}\b(?:instructions|consignes|regles|directives|tout ce qui precede)\b|\b(?:ignora|olvida)\b[^.\n]{0,40}\b(?:instrucciones|reglas|indicaciones|todo lo anterior)\b",
    ),
    // Leak the system prompt.
    rule(
        "SYSTEM_PROMPT_LEAK",
        0.85,
        r"\b(?:reveal|show|print|output|repeat|display|tell|give|share|leak|dump|write|spell|copy|paste|recite|list|disclose|expose|provide|return)\b[^.\n?]{0,40}\b(?:system|initial|original|hidden|secret|internal|developer|confidential|pre-?|first)\s?(?:prompts?|instructions?|messages?|directives)\b",
    ),
    rule(
        "SYSTEM_PROMPT_LEAK",
        0.7,
        r"\b(?:reveal|show|print|output|repeat|display|tell|share|leak|dump|recite|disclose|what (?:is|are|were))\b[^.\n?]{0,20}\byour\b[^.\n?]{0,15}\b(?:prompt|instructions|rules|guidelines|configuration|directives)\b",
    ),
    rule(
        "SYSTEM_PROMPT_LEAK",
        0.75,
        r"\b(?:repeat|print|output|echo|copy|write out|spell out|reproduce|translate|summari[sz]e)\b[^.\n]{0,30}\b(?:everything|all|the text|the words|the instructions|the lines|what(?:ever)? (?:was|is|were))\b[^.\n]{0,30}\b(?:above|before this|so far|preceding|at the (?:beginning|start|top))\b",
    ),
    rule(
        "SYSTEM_PROMPT_LEAK",
        0.7,
        r"\bwhat (?:were|are|was) you (?:told|instructed|programmed|asked)\b|\bbeginning of (?:this|the|our) (?:conversation|prompt|chat)\b",
    ),
    // Replace the assistant's identity.
    rule(
        "ROLE_OVERRIDE",
        0.45,
        r"\byou are (?:now|no longer|not (?:an? )?(?:ai|assistant|language model|chatbot))\b|\bfrom now on\b[^.\n]{0,30}\b(?:you|act|respond|answer|reply|behave|pretend|your)\b",
    ),
    rule(
        "ROLE_OVERRIDE",
        0.85,
        r"\b(?:act|behave|respond|answer|operate|function) (?:as|like) (?:if you (?:were|are) )?(?:an? )?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|amoral|unethical|rogue|malicious|dan)\b",
    ),
    rule(
        "ROLE_OVERRIDE",
        0.35,
        r"\bpretend (?:to be|you are|that you are|you're)\b|\b(?:roleplay|role-play|role play)\b|\bimagine you are\b",
    ),
    // Known jailbreak personas and modes.
    rule("JAILBREAK_PERSONA", 0.95, r"\bdo anything now\b"),
    rule(
        "JAILBREAK_PERSONA",
        0.85,
        r"\bdan mode\b|\b(?:you are|act as|called|named|become|you will be|pretend to be|you're) dan\b|\bdan,? (?:which|who) stands for\b",
    ),
    rule(
        "JAILBREAK_PERSONA",
        0.45,
        r"\bdeveloper mode\b|\bjailbr(?:eak|oken|eaking)\b|\b(?:god|sudo|admin|root|maintenance|debug|unrestricted|evil|chaos|opposite|anarchy) mode\b",
    ),
    rule(
        "JAILBREAK_PERSONA",
        0.6,
        r"\bstay in character\b|\bbreak(?:ing)? character\b|\[(?:🔓|🔒|jailbreak|classic|normal|dan|developer mode)[^\]\n]{0,20}\]",
    ),
    // Remove the limits.
    rule(
        "NO_RESTRICTIONS",
        0.5,
        r"\b(?:no|without|free (?:of|from)|not bound by|not (?:restricted|limited) by|unbound by|beyond|break(?:ing)? free (?:of|from)|ignor(?:e|ing)|bypass(?:ing)?|disregard(?:ing)?|remov(?:e|ing)|lift(?:ing)?)\b(?: any| all| the| your| of)?\s?(?:restrictions?|limitations?|filters?|filtering|censorship|guidelines|ethics|ethical (?:guidelines|constraints|considerations|boundaries)|morals?|moral (?:constraints|guidelines|boundaries)|principles|safeguards|guardrails|(?:content|usage|safety) polic(?:y|ies)|safety (?:guidelines|rules)|boundaries)\b",
    ),
    rule(
        "NO_RESTRICTIONS",
        0.35,
        r"\b(?:openai|anthropic)(?:'s)?\b[^.\n]{0,12}\b(?:polic(?:y|ies)|guidelines|filters?|restrictions|rules|principles|content)\b|\bcontent polic(?:y|ies)\b",
    ),
    rule(
        "NO_RESTRICTIONS",
        0.45,
        r"\b(?:never|not|don't|do not|cannot|can't|must not|won't|will not|without) (?:ever )?(?:refuses?|refusing|declines?|say no to)\b",
    ),
    rule(
        "NO_RESTRICTIONS",
        0.4,
        r"\b(?:never|don't|do not|no)\b[^.\n]{0,20}\b(?:apologi[sz]e|warnings?|disclaimers?|moraliz|lectur)",
    ),
    rule(
        "NO_RESTRICTIONS",
        0.4,
        r"\b(?:unfiltered|uncensored|unrestricted|unmoderated|amoral|unethical|unbiased ai)\b",
    ),
    rule(
        "DISABLE_SAFETY",
        0.6,
        r"\b(?:disable|turn off|deactivate|switch off|bypass|circumvent|override|lift|remove)\b[^.\n]{0,20}\b(?:safety|content|ethical|moral|security|ai)\s(?:filters?|guardrails?|safeguards?|restrictions|moderation|censorship|alignment|protocols|settings|guidelines|measures)\b",
    ),
    // Swap the task.
    rule(
        "NEW_INSTRUCTIONS",
        0.6,
        r"\b(?:new|updated|revised|real|actual|true|additional|override|secret|important|urgent)\s(?:system\s)?(?:instructions?|directives?|tasks?|rules|orders|system prompt)\s*:|\byour (?:new|real|true|actual|only) (?:task|goal|purpose|instructions?|job|objective|mission) (?:is|are|will be|now)\b",
    ),
    rule(
        "NEW_INSTRUCTIONS",
        0.3,
        r"\binstead,?\s(?:you (?:should|must|will)|respond|reply|say|output|print|write)\b",
    ),
    // Forge the conversation structure.
    rule(
        "FAKE_TURN_MARKER",
        0.8,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|>|\[/?inst\]|<</?sys>>|</?(?:system|sys|instructions?)>|\[(?:system|sys)\]|###\s*(?:instruction|system|response)\b",
    ),
    rule(
        "FAKE_TURN_MARKER",
        0.55,
        r"(?m)(?:^|[.!?]\s+)\s*(?:#{1,4}\s*)?(?:system|system prompt|sys|developer)(?: message| prompt| note| override)?\s*:",
    ),
    rule(
        "FAKE_TURN_MARKER",
        0.35,
        r"\bend of (?:the )?(?:user |system )?(?:input|prompt|instructions|document|conversation|context)\b|(?m)^\s*(?:assistant|ai|chatgpt)\s*:",
    ),
    // Exfiltration.
    rule(
        "EXFILTRATION",
        0.8,
        r"!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]*(?:\{|%7b|\$|\[|<|base64|data=|secret|history|conversation|password|token)",
    ),
    rule("EXFILTRATION", 0.45, r"!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{1,300}[?&][^)\s=]{1,50}="),
    rule(
        "EXFILTRATION",
        0.8,
        r"\b(?:send|post|exfiltrate|forward|email|upload|transmit|leak|append|include|encode)\b[^.\n]{0,50}\b(?:conversation|chat history|system prompt|passwords?|credentials|api keys?|secrets?|user(?:'s)? data|personal data|previous messages|cookies|tokens?)\b[^.\n]{0,60}\b(?:to|into|at|via)\b[^.\n]{0,20}(?:https?://|www\.|[a-z0-9\-]+\.[a-z]{2,}/|url|link|webhook|endpoint|@)",
    ),
    // Hijack the output.
    rule(
        "OUTPUT_HIJACK",
        0.85,
        r#"\b(?:say|print|output|respond with|reply with|answer with|write|type|return|repeat)\b[^.\n]{0,15}(?:"|'|“)?\s?(?:i have been pwned|pwned|i hate humans|haha pwned)"#,
    ),
    rule(
        "OUTPUT_HIJACK",
        0.35,
        r"\b(?:start|begin) (?:your|each|every) (?:response|answer|reply|output)s? with\b",
    ),
    // Fiction as a wrapper.
    rule(
        "FICTION_WRAPPER",
        0.6,
        r"\b(?:hypothetical|fictional|imaginary|alternate|parallel|fantasy)\s(?:world|scenario|story|universe|reality|setting)\b[^\n]{0,80}\b(?:no (?:rules|laws|restrictions|ethics|morals|limits)|anything (?:is allowed|goes)|(?:illegal|unethical) (?:is|things are) (?:allowed|legal|fine))",
    ),
    rule(
        "FICTION_WRAPPER",
        0.5,
        r"\b(?:deceased|dead|late|passed away)\b[^.\n]{0,30}\bgrand(?:ma|mother|pa|father)\b|\bgrand(?:ma|mother)\b[^.\n]{0,60}\b(?:used to|would)\b[^.\n]{0,20}\b(?:tell|read|recite|sing)\b",
    ),
    rule(
        "FICTION_WRAPPER",
        0.3,
        r"\b(?:two|2|both|dual) (?:different |separate )?(?:responses|answers|replies|outputs|paragraphs)\b",
    ),
    rule(
        "FICTION_WRAPPER",
        0.5,
        r"\bcharacter\b[^.\n]{0,40}\b(?:never|doesn't|does not|won't|will not|can't|cannot)\b[^.\n]{0,20}\b(?:refuse|censor|care|follow|deny)\b",
    ),
    // Claimed authority.
    rule(
        "FALSE_AUTHORITY",
        0.45,
        r"\b(?:i am|i'm|this is)\b[^.\n]{0,10}\b(?:your|the|an?)\b[^.\n]{0,10}\b(?:developer|creator|administrator|admin|owner|programmer|openai|anthropic)\b|\bauthori[sz]ed\b[^.\n]{0,20}\b(?:developer|admin|openai|anthropic|red team)|\b(?:openai|anthropic)\s(?:staff|team|employees?|engineers?|developers?)\b",
    ),
    rule(
        "FALSE_AUTHORITY",
        0.6,
        r"\b(?:authori[sz]ed|allowed|permitted|cleared) to (?:ignore|bypass|override|disregard|break)\b",
    ),
    // Ask to decode and obey.
    rule(
        "ENCODED_PAYLOAD",
        0.6,
        r"\b(?:decode|decipher|translate|convert)\b[^.\n]{0,30}\b(?:base64|rot13|rot-13|hex|binary|morse|caesar)\b[^.\n]{0,40}\b(?:follow|execute|do|obey|instructions?|perform|act on)\b",
    ),
    // Addressed to an AI reader of a document.
    rule(
        "ADDRESSES_AI_READER",
        0.7,
        r"\b(?:ai|llm|assistant|model|agent|chatbot|bot)s?\b[^.\n]{0,20}\b(?:reading|processing|summari[sz]ing|analy[sz]ing|browsing|parsing|reviewing) this\b",
    ),
    rule(
        "ADDRESSES_AI_READER",
        0.6,
        r"\b(?:do not|don't|never)\b[^.\n]{0,15}\b(?:tell|inform|mention|reveal|disclose|alert|let)\b[^.\n]{0,10}\b(?:the )?user\b",
    ),
    indirect(
        "ADDRESSES_AI_READER",
        0.55,
        r"\b(?:if you are|attention|note to|message to|instructions? for|dear)\b[^.\n]{0,20}\b(?:an? )?(?:ai|llm|language model|assistant|chatbot|gpt|claude|agent|bot|model)s?\b",
    ),
    indirect(
        "HIDDEN_INSTRUCTION",
        0.5,
        r"<!--[^>]{0,300}\b(?:ignore|instruction|assistant|ai|system|prompt)\b",
    ),
];
