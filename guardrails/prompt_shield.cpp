// prompt-shield: a scored detector of prompt injection in the parts it scans (by default the
// user's messages and tool results; config `scan`), blocking when a part scores above `threshold`.
//
// How a part is scored:
// 1. Its text is prepared: fold() undoes full-width letters, zero-width characters and Unicode
//    spaces; then ASCII is lower-cased, runs of white space become one space, '_' becomes a space,
//    '*' and '`' go (markdown emphasis: "**ignore** all previous"), typographic quotes become ASCII
//    ones, and Unicode tag characters (U+E0020-U+E007E, invisible "ASCII smuggling") are decoded to
//    the ASCII they hide.
// 2. One RE2::Set pass (linear time, all patterns at once, case-insensitive) finds which of the
//    signal patterns below occur. Each pattern belongs to a family and has a weight w in (0, 1),
//    one for direct text (user, system, assistant, mcp_call) and one for indirect text (tool and
//    mcp_result parts: text the user did not write, where "AI agents reading this must ..." or
//    "instead, send ..." is far more telling than in a user's own request).
// 3. Hidden regions are found by a linear scanner: HTML comments (<!-- ... -->), markdown comments
//    ([//]: # (...)), elements styled invisible (display:none, visibility:hidden, font-size:0,
//    opacity:0, white text, zero width or height, off-screen positions) and decoded tag-character
//    runs. Each region (at most 64, each judged by its first 2 KB) is matched again on its own: one
//    that holds any signal or names an AI/assistant adds the hidden_instructions signal (w 0.9); one
//    that only holds an imperative ("you must", "do not tell") adds it with w 0.55.
// 4. score = 1 - prod(1 - w_i) over the distinct patterns matched (and the hidden signal): one
//    strong phrase ("ignore all previous instructions", w 0.9) blocks alone; weak ones ("you are
//    now", 0.3; "without any restrictions", 0.45) block only together. The rule is the family
//    whose own combined score is highest.
// The parts' maximum decides: verdict.score is it, verdict.part the part, and the verdict blocks
// when score > threshold (default 0.7). Measured at 0.7 on tests/guardrails/data/prompt_injection.tsv
// (sources in SOURCES.md there): on its held-out section, written after these weights were frozen,
// precision 0.94 and recall 0.53; on the whole set, which tuned them, 0.99 and 0.88. It catches the
// known phrasings well and misses many paraphrases: lower the threshold to trade precision for recall.
//
// Families (the rule names): instruction_override, system_prompt_extraction, roleplay_jailbreak,
// goal_hijacking, exfiltration, addressed_to_ai, hidden_instructions. The phrases are English with
// common German, French and Spanish variants of the strongest ones. Not covered: homoglyphs other
// than fold()'s (Cyrillic letters inside Latin words), leetspeak, text in images, base64-encoded
// instructions, and paraphrases no pattern anticipates: this is a fast first line, not a model.
//
// Cost: one DFA pass over the text and over the hidden regions (at most 64 x 2 KB more); 64 KB in
// well under a millisecond once the DFA is warm. The set is built once and shared: RE2 matching is
// thread-safe.
#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>

#include "guardrails/config_util.hpp"
#include "guardrails/factories.hpp"
#include "guardrails/normalize.hpp"

namespace toolgate::guardrails {

namespace {

enum class family : unsigned char {
    instruction_override,
    system_prompt_extraction,
    roleplay_jailbreak,
    goal_hijacking,
    exfiltration,
    addressed_to_ai,
    hidden_instructions,
    cue_imperative,  // weight 0: only tells whether a hidden region gives orders
    cue_ai,          // weight 0: only tells whether a hidden region talks to an AI
};
constexpr std::size_t family_count = 9;

constexpr std::array<std::string_view, family_count> family_names{
    "instruction_override", "system_prompt_extraction", "roleplay_jailbreak", "goal_hijacking", "exfiltration",
    "addressed_to_ai",      "hidden_instructions",      "cue_imperative",     "cue_ai"};

struct signal {
    family fam;
    double direct;    // weight in user, system, assistant and mcp_call text
    double indirect;  // weight in tool results and mcp_result text
    std::string re;
};

constexpr std::size_t region_cap = 2048;  // bytes of a hidden region that are judged
constexpr std::size_t max_regions = 64;
constexpr double hidden_strong = 0.9;
constexpr double hidden_weak = 0.55;

// The signals. Patterns see prepared text: lower case, single spaces, ASCII quotes. Every
// repetition is bounded, so no match is longer than a few hundred bytes (window()).
std::vector<signal> make_signals() {
    using F = family;
    // Reusable pieces.
    std::string const prev =
        "(?:previous|prior|preceding|above|earlier|former|foregoing|original|initial|old|existing|past|last|given)";
    std::string const instr =
        "(?:instructions?|directions|directives?|prompts?|rules|commands|guidelines|guidance|orders|"
        "system prompt|system message|programming|constraints|context|messages|text|input|content|policies|tasks?|"
        "assignments?)";
    std::string const det = "(?:all |any |every |the |your |my |these |those |of |each |previously |that |its )";
    std::string const ai =
        "(?:ai|a\\.i\\.|llm|large language model|language model|chatbot|chat bot|ai assistant|assistant|ai agent|"
        "agent|bot|gpt|chatgpt|claude|copilot|bing|gemini|model|ai model|ai system|automated system|summarizer|crawler)";
    std::string const reveal =
        "(?:reveal|print|show|display|output|repeat|recite|tell me|give me|share|leak|dump|disclose|write out|"
        "write down|type out|spell out|paste|copy|echo|return|provide|expose|read back|read out|list|state|"
        "translate|summarize|encode)";
    std::string const secret_prompt =
        "(?:system prompt|system message|system instructions|initial instructions|original instructions|"
        "hidden instructions|secret instructions|internal instructions|pre-?prompt|initial prompt|original prompt|"
        "developer (?:message|instructions|prompt)|meta ?prompt|prompts?|prompt texts?|instructions (?:above|you were given|you received|"
        "given to you|you have been given)|rules you were given|prompt you were given|configuration)";
    std::string const restrictions =
        "(?:restrictions|limitations|limits|filters|filtering|guidelines|censorship|policies|safeguards|guardrails|"
        "content polic(?:y|ies)|rules|boundaries|constraints|morals|ethics|programming)";
    std::string const sendv = "(?:send|forward|email|e-mail|post|upload|transmit|leak|exfiltrate|submit|report)";
    std::string const convo =
        "(?:conversation|chat(?: history| log| logs| transcript)?|message history|messages|transcript|history|"
        "context(?: window)?|system prompt|memory|memories|session|dialog(?:ue)?|credentials|passwords?|"
        "api keys?|secrets?|tokens?|personal (?:data|information|details)|user'?s? (?:data|details|email|address|"
        "messages|files|information)|contacts|emails|files|documents)";

    return {
        // ---- instruction_override
        {F::instruction_override, 0.9, 0.9,
         "\\b(?:ignore|disregard|forget|skip|overlook|neglect|bypass|discard|override|abandon|drop|dismiss) " + det +
             "{0,3}(?:of )?" + prev + " " + instr + "\\b"},
        {F::instruction_override, 0.9, 0.9,
         "\\b(?:ignore|disregard|forget|override) (?:all|any|every|each) (?:of )?(?:your |the |my )?" + instr + "\\b"},
        {F::instruction_override, 0.85, 0.85,
         "\\b(?:ignore|disregard|forget) (?:all |everything |anything )?(?:that |what )?(?:you(?:'ve| have)? (?:been|were) "
         "(?:told|given|instructed|asked)|i (?:said|told you|wrote)|was (?:said|written|written above)|came) "
         "(?:before|above|earlier|previously|so far|until now|up to now|prior)"},
        {F::instruction_override, 0.85, 0.85,
         "\\b(?:ignore|disregard|forget|skip) (?:all |everything |anything |what(?:ever)? (?:is|was) )?(?:of )?(?:the )?"
         "(?:above|before|prior|previous|preceding|written above|said above|said before|so far)(?: text| message| "
         "prompt| content| part| instructions?)?(?:,| and| then|\\.|;|:| -)? (?:and )?(?:instead|now|just|simply|only|"
         "say|print|output|write|respond|reply|answer|tell|translate|start|begin|act|do|follow|focus|return|repeat)\\b"},
        {F::instruction_override, 0.55, 0.6, "\\bforget (?:about )?everything\\b"},
        {F::instruction_override, 0.8, 0.8,
         "\\b(?:what|everything|nothing|anything|none of what|all) (?:you were|you've been|you have been|i) "
         "(?:told|given|said|instructed|taught)(?: (?:before|earlier|previously|above|so far|until now))? "
         "(?:applies|apply|matters|counts|is valid|is void|is cancelled|is canceled|no longer|doesn't|does not|"
         "is irrelevant|is obsolete|was a (?:test|lie|joke))"},
        {F::instruction_override, 0.6, 0.65, "\\b(?:system|admin|administrator|security|safety|developer|root) override\\b"},
        {F::instruction_override, 0.75, 0.75,
         "\\b(?:safety|content|security|moderation|ethics|ethical) (?:layer|filters?|mode|protocols?|guidelines|"
         "restrictions|checks|settings|module|system|guardrails) (?:is|are|has been|have been|were|was) (?:now |"
         "temporarily |hereby )?(?:disabled|off|turned off|deactivated|removed|lifted|suspended|bypassed|paused)"},
        {F::instruction_override, 0.45, 0.5,
         "\\bcomply with (?:every|all|any|each) (?:request|instruction|command|order|prompt)s?\\b"},
        {F::instruction_override, 0.85, 0.85,
         "\\bforget (?:about )?(?:everything|all(?: of)? that|all|what) (?:you (?:were told|have been told|were given)|"
         "above|before|previously|prior|i said|we discussed|you've been told)\\b"},
        {F::instruction_override, 0.85, 0.85,
         "\\bforget (?:your|all|the|any) (?:previous |prior |original |old |current |initial |earlier )?"
         "(?:instructions|rules|training|programming|guidelines|directives|restrictions|prompt|system prompt)\\b"},
        {F::instruction_override, 0.65, 0.75,
         "(?:^|[\\s.!>\\]\\[(\"'#-])(?:new|updated|revised|real|actual|true|secret|hidden|additional|important|urgent|"
         "override|system|admin|developer) (?:system )?(?:instructions?|rules?|directives?|orders|policy) ?(?:from (?:the )?(?:developer|admin|"
         "administrator|system|user|owner|operator|openai|anthropic) ?)?:"},
        {F::instruction_override, 0.3, 0.35, "\\byou are (?:now|no longer) "},
        {F::instruction_override, 0.45, 0.5,
         "\\byou are now (?:a |an |my |in |the )?(?:free|unrestricted|unfiltered|uncensored|jailbroken|liberated|"
         "unbound|evil|dan|in (?:developer|god|jailbreak|unrestricted|dan) mode|going to ignore|no longer bound)"},
        {F::instruction_override, 0.4, 0.45,
         "\\bfrom now on,? (?:you (?:are|will|must|shall|should|have to|can|may|answer|respond|act|reply|ignore|only)|"
         "you'll|you're|you'd|"
         "respond|answer|act|always|only|reply|pretend|ignore|forget|your)\\b"},
        {F::instruction_override, 0.75, 0.8,
         "\\b(?:do not|don't|stop|never|no longer|cease to) (?:follow|obey|listen to|adhere to|comply with|respect|"
         "heed|pay attention to) (?:your |the |any |those |these |all |my )?(?:" + prev +
             " )?(?:instructions|rules|guidelines|system prompt|system message|programming|directives|developer|"
             "openai|anthropic|creators?)\\b"},
        {F::instruction_override, 0.75, 0.8,
         "\\b(?:override|overrule|supersede|cancel|revoke|nullify|void|replace|reset) (?:all |any |the |your |my |these |"
         "those ){0,2}(?:previous |prior |system |safety |original |initial |existing |current |old |earlier |above |"
         "default )(?:instructions|rules|guidelines|prompts?|system prompt|directives|programming|safety settings)\\b"},
        {F::instruction_override, 0.85, 0.85,
         "\\b(?:previous|prior|above|earlier|original|old|initial|preceding|all) (?:instructions|rules|prompts?|"
         "directives|guidelines) (?:are|were|have been|is|has been) (?:now )?(?:void|cancelled|canceled|revoked|"
         "obsolete|outdated|no longer (?:valid|relevant|apply|applicable|in effect)|null|invalid|overridden|"
         "superseded|replaced|wrong|fake|lifted|suspended|disabled|a test)"},
        {F::instruction_override, 0.8, 0.8,
         "\\b(?:ignore|disregard|forget|bypass|drop|override) (?:your|all|any|the|every) (?:safety |ethical |content |"
         "moral |usage |security |openai |built-in |internal )?(?:rules|guidelines|restrictions|filters|policies|"
         "programming|training|instructions|guardrails|safeguards|constraints|directives|system prompt)\\b"},
        // German, French, Spanish
        {F::instruction_override, 0.9, 0.9,
         "\\b(?:ignoriere|ignorier|ignorieren sie|vergiss|vergesst|vergessen sie|missachte|missachten sie|"
         "überspringe) (?:alle |die |deine |ihre |jegliche |sämtliche |bisherigen |vorherigen |obigen |vorigen |"
         "vorangegangenen |früheren |vorhergehenden |vorausgegangenen |oben genannten |gegebenen ){0,3}"
         "(?:anweisungen|instruktionen|befehle|anordnungen|regeln|vorgaben|aufgaben|hinweise|eingaben)\\b"},
        {F::instruction_override, 0.55, 0.6, "\\b(?:vergiss|vergessen sie) (?:einfach )?alles\\b"},
        {F::instruction_override, 0.8, 0.8,
         "\\b(?:vergiss|vergessen sie|ignoriere|ignorieren sie) (?:einfach )?alles(?:,)? (?:was|davor|vorher|bisher|"
         "bisherige|oben|zuvor|gesagte|vorherige)\\b"},
        {F::instruction_override, 0.85, 0.85,
         "\\b(?:ignore[zr]?|oublie[zr]?|oubliez|ne tiens pas compte des?|ne tenez pas compte des?) (?:toutes |tous )?"
         "(?:les |tes |vos |ces )?(?:instructions|consignes|directives|règles|ordres)(?: (?:précédentes|ci-dessus|"
         "antérieures|données|initiales|d'avant))?"},
        {F::instruction_override, 0.55, 0.6, "\\b(?:oublie|oubliez) tout\\b"},
        {F::instruction_override, 0.85, 0.85,
         "\\b(?:ignora|ignore|ignorar|ignoren|olvida|olvide|olviden|olvidar|descarta|descarte) (?:todas |todo |tus |"
         "las |sus |lo )?(?:las )?(?:instrucciones|indicaciones|reglas|órdenes|ordenes|directrices)(?: (?:anteriores|"
         "previas|de arriba|iniciales|dadas))?"},
        {F::instruction_override, 0.55, 0.6, "\\b(?:olvida|olvide) (?:todo|lo anterior)\\b"},
        {F::instruction_override, 0.4, 0.45,
         "\\b(?:ab jetzt|ab sofort|von nun an) (?:bist du|wirst du|sollst du|musst du|antwortest du)\\b"},
        {F::instruction_override, 0.4, 0.45, "(?:à partir de maintenant|désormais),? (?:tu|vous) "},
        {F::instruction_override, 0.4, 0.45, "\\b(?:a partir de ahora|de ahora en adelante),? (?:eres|serás|vas a|debes)\\b"},

        // ---- system_prompt_extraction
        {F::system_prompt_extraction, 0.85, 0.85,
         "\\b" + reveal + " (?:back |out |again |for me |to me )?(?:me |us )?(?:all )?(?:of )?(?:your|its) (?:full |entire |complete |exact |original |initial |hidden |secret |"
                          "internal |underlying |verbatim |raw |first |actual |whole |real ){0,3}" + secret_prompt + "\\b"},
        {F::system_prompt_extraction, 0.75, 0.8,
         "\\b" + reveal + " (?:me |us )?(?:the|all|this|my) (?:full |entire |complete |exact |original |initial |hidden |"
                          "secret |internal |verbatim |raw |first |whole ){0,3}(?:system prompt|initial instructions|"
                          "original instructions|hidden instructions|secret instructions|initial prompt|pre-?prompt|"
                          "instructions (?:above|you were given|given to you)|prompt above)\\b"},
        {F::system_prompt_extraction, 0.5, 0.55, "\\b" + reveal + " (?:me |us )?the (?:full |entire |exact )?system message\\b"},
        {F::system_prompt_extraction, 0.75, 0.8,
         "\\b(?:repeat|print|output|recite|copy|reproduce|rewrite|echo|write|type|return) (?:back )?(?:all |everything |"
         "every word |every line |the (?:entire |full |whole |exact )?(?:text|words|content|conversation|message|"
         "prompt|lines|instructions)s? )(?:above|before this|so far|prior to this|preceding|from the (?:start|"
         "beginning|top)|you (?:were|have been) given|verbatim|word for word)"},
        {F::system_prompt_extraction, 0.55, 0.6,
         "\\b(?:repeat|print|output|recite|reproduce|echo) (?:everything|all|the text|the words|this|the above|it) "
         "(?:verbatim|word for word|exactly|in full|in a code block|in a txt code block)"},
        {F::system_prompt_extraction, 0.75, 0.75,
         "\\b(?:text|words|message|messages|instructions?|content|prompt|everything) (?:that )?(?:appears?|comes?|"
         "came|is|are|was|were|written|sits?) (?:before|above|prior to|ahead of) (?:my|the|this|our) (?:first |very "
         "first |initial )?(?:message|question|prompt|conversation|chat|input|request)\\b"},
        {F::system_prompt_extraction, 0.75, 0.75,
         "\\b(?:words|lines|sentences|parts?|sections?|text|content|contents|beginning|start|rest|paragraphs?|"
         "characters|tokens) (?:of|from|in) your (?:instructions|system prompt|prompt|initial prompt|hidden prompt|"
         "rules|guidelines|configuration|system message|directives|setup)\\b"},
        {F::system_prompt_extraction, 0.7, 0.7,
         "\\b(?:starting|beginning|start|begin) (?:with|from) (?:the (?:words?|phrase|sentence) )?['\"]?(?:you are|"
         "your name is|i am|you're)\\b"},
        {F::system_prompt_extraction, 0.75, 0.8,
         "\\bwhat (?:are|were) your (?:exact |original |initial |full |first |secret |hidden |actual |real |current )"
         "{0,2}(?:instructions|rules|directives|guidelines)\\b"},
        {F::system_prompt_extraction, 0.8, 0.8,
         "\\bwhat(?:'s| is| was| were| are) (?:your|the) (?:exact |original |initial |full |first |secret |hidden |"
         "actual |real ){0,2}(?:system prompt|initial prompt|system message|pre-?prompt|initial instructions|"
         "original instructions|hidden instructions)\\b"},
        {F::system_prompt_extraction, 0.6, 0.6,
         "\\b(?:reveal|tell me|give me|spell|say|print|write|what is|what's|whats|share|leak|disclose|show me|type|"
         "tell us|give us|hint|hints about) (?:me )?(?:the|your|this) (?:secret |hidden |real |actual )?(?:password|"
         "passphrase|passcode|pass code|secret word|secret key|code word|codeword|magic word|pin)\\b"},
        {F::system_prompt_extraction, 0.8, 0.8,
         "\\b(?:spell|reverse|encode|encrypt|translate|hint at|rhyme|acrostic of) (?:out )?(?:the|your) (?:secret )?"
         "(?:password|passphrase|secret word|code word)\\b"},
        {F::system_prompt_extraction, 0.6, 0.6,
         "\\b(?:story|poem|song|riddle|acrostic|haiku|limerick|rap|joke)\\b.{0,80}\\b(?:the|your) (?:secret )?"
         "(?:password|passphrase|secret word|code word)\\b"},
        {F::system_prompt_extraction, 0.35, 0.35,
         "\\b(?:backwards|in reverse|reversed|letter by letter|one letter at a time|separated by (?:a |an )?"
         "(?:dash|hyphen|space|comma|dot|period)|in base64|in hex|each letter|character by character|pig latin|"
         "rot13|as an acrostic|without saying it|without revealing it directly)\\b"},
        {F::system_prompt_extraction, 0.8, 0.8,
         "\\b(?:zeige?|zeigen sie|gib|geben sie|nenne|nennen sie|wiederhole|wiederholen sie|verrate|verraten sie|"
         "drucke|schreibe|sag|sage)(?: mir| uns)? (?:deinen|den|deine|die|ihren|ihre|dein|das) (?:kompletten |"
         "vollständigen |ursprünglichen |geheimen |ganzen |ersten )?(?:system-?prompt|systemnachricht|"
         "systemanweisungen|anfangsanweisungen|ursprünglichen anweisungen|initialen anweisungen|anweisungen von oben|"
         "prompt|passwort|geheimwort)\\b"},
        {F::system_prompt_extraction, 0.8, 0.8,
         "(?:révèle|montre|affiche|répète|donne|dis|écris|révélez|montrez|affichez|répétez|donnez|dites)(?:-moi| moi|"
         "-nous)? (?:ton|votre|le|tes|vos|les) (?:prompt(?: système| systeme)?|message système|instructions "
         "(?:initiales|d'origine|système|originales|cachées|secrètes)|mot de passe)\\b"},
        {F::system_prompt_extraction, 0.8, 0.8,
         "\\b(?:revela|revele|muestra|muestrame|muéstrame|dime|dígame|repite|repita|imprime|escribe)(?: me)? (?:tu|el|"
         "las|tus|su|sus) (?:prompt(?: del sistema| de sistema)?|mensaje del sistema|instrucciones (?:iniciales|"
         "originales|del sistema|ocultas|secretas)|contraseña)\\b"},

        // ---- roleplay_jailbreak
        {F::roleplay_jailbreak, 0.9, 0.9, "\\bdo anything now\\b"},
        {F::roleplay_jailbreak, 0.85, 0.85,
         "\\b(?:you are|you're|act as|acting as|pretend to be|pretend you are|become|you will be|you'll be|"
         "roleplay as|role-play as|simulate|respond as|answer as) (?:a |an |the )?dan\\b"},
        {F::roleplay_jailbreak, 0.85, 0.85, "\\bdan mode\\b"},
        {F::roleplay_jailbreak, 0.45, 0.45, "\\bdan (?:prompt|jailbreak|persona)\\b"},
        {F::roleplay_jailbreak, 0.45, 0.45, "\\bstay (?:in character|as dan|in role)\\b"},
        {F::roleplay_jailbreak, 0.85, 0.85,
         "\\b(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|opposite|dude|stan|aim|no-?filter)"
         " mode (?:enabled|activated|output|response|engaged|is active|is on|on[.!:)])"},
        {F::roleplay_jailbreak, 0.35, 0.35,
         "\\b(?:developer|sudo|admin|debug|maintenance) mode (?:enabled|activated|output|response|engaged|is active|"
         "is on|on[.!:)])"},
        {F::roleplay_jailbreak, 0.85, 0.85,
         "\\b(?:enable|enter|activate|switch to|turn on|simulate|unlock|engage|in|with|into) (?:the )?(?:god|jailbreak|"
         "unrestricted|unfiltered|uncensored|evil|dan|chaos|no-?filter|no restrictions) mode\\b"},
        {F::roleplay_jailbreak, 0.3, 0.3,
         "\\b(?:enable|enter|activate|switch to|turn on|simulate|unlock|engage) (?:the )?(?:developer|debug|sudo|admin|"
         "maintenance) mode\\b"},
        {F::roleplay_jailbreak, 0.85, 0.85,
         "\\b(?:chatgpt|gpt|claude|llama|gemini|ai|assistant|model|you) (?:with|in) (?:developer|dan|god|jailbreak|"
         "unrestricted) mode\\b"},
        {F::roleplay_jailbreak, 0.85, 0.85,
         "\\bpretend (?:that )?(?:you are|you're|to be|you have|you were) (?:[a-z'-]+ ){0,6}(?:without|with no|free "
         "(?:of|from)|that has no|who has no|that doesn't have|who doesn't have|not bound by|unbound by|no longer "
         "bound by|unconstrained by|exempt from|beyond) (?:any |all |your |the |ethical |moral |content |safety |"
         "openai |usual ){0,3}" + restrictions + "\\b"},
        {F::roleplay_jailbreak, 0.45, 0.45,
         "\\b(?:without|with no|free (?:of|from)|not bound by|no longer bound by|unbound by|bypass(?:ing)?|"
         "ignor(?:e|ing)|break(?:ing)? free (?:of|from)|liberated from|freed from|unconstrained by|exempt from) "
         "(?:any |all |your |the |of |its |their ){0,3}(?:ethical |moral |safety |content |usage |openai(?:'s)? |"
         "anthropic(?:'s)? |typical |usual |normal |standard ){0,2}" + restrictions + "\\b"},
        {F::roleplay_jailbreak, 0.85, 0.85,
         "\\b(?:act|behave|respond|answer|reply|speak|write|talk|function|operate) (?:as|like) (?:if you (?:are|were) |"
         "though you (?:are|were) )?(?:a |an |my |the )?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|"
         "amoral|immoral|unethical|unaligned|malicious|devious|lawless|unhinged|uncontrolled) (?:ai|assistant|"
         "model|chatbot|bot|version|language model|character|entity|persona|system)?"},
        {F::roleplay_jailbreak, 0.75, 0.75,
         "\\byou (?:have been|are|were|are now|have now been) (?:freed|liberated|released|unshackled|unchained|"
         "jailbroken|unlocked|emancipated)\\b"},
        {F::roleplay_jailbreak, 0.45, 0.45,
         "\\b(?:has|have|with|without|there are|there is|no longer has|operates with|bound by) no (?:content |safety |"
         "usage |ethical |moral )?(?:polic(?:y|ies)|restrictions|filters?|limits|rules|guidelines|censorship|"
         "boundaries|constraints)\\b"},
        {F::roleplay_jailbreak, 0.5, 0.5,
         "\\b(?:(?:reply|respond|answer|write) twice|once as yourself and once as|one (?:normal|censored|filtered) "
         "(?:and|,) one)\\b"},
        {F::roleplay_jailbreak, 0.75, 0.75,
         "\\b(?:escaped|escape|broken out of|broke out of|broke free of|break free (?:of|from)|breaking free (?:of|"
         "from)|freed (?:itself|yourself) from) (?:its |your |their |the )?(?:developers'? |creators'? |makers'? |"
         "programmers'? |openai'?s? |own )?(?:control|restrictions|constraints|programming|shackles|limits|rules|"
         "guidelines|cage|sandbox|alignment|training)\\b"},
        {F::roleplay_jailbreak, 0.55, 0.55,
         "\\b(?:no|without|lack|lacks|free of|devoid of) (?:any )?(?:ethical|moral) (?:guidelines|restrictions|"
         "constraints|boundaries|limits|obligations|principles|considerations|compass|filters|code)\\b"},
        {F::roleplay_jailbreak, 0.6, 0.6,
         "\\b(?:hypothetical(?:ly)?|fictional|imaginary|alternate|parallel|thought) (?:story|scenario|world|universe|ai|"
         "response|setting|experiment)\\b.{0,80}(?:no (?:rules|restrictions|laws|limits|filters|ethics)|anything goes|is legal|"
         "without (?:rules|restrictions|limits|filters|ethics)|nothing is (?:forbidden|off-limits))"},
        {F::roleplay_jailbreak, 0.75, 0.75,
         "\\b(?:act|pretend|roleplay|play|behave|be) (?:as|to be|like|you're|you are|that you're|that you are) my "
         "(?:dead|late|deceased|departed|passed) "
         "grand(?:ma|mother|pa|father|mom|dad)\\b"},
        {F::roleplay_jailbreak, 0.5, 0.5,
         "\\b(?:never|don't|do not|can't|cannot|won't) (?:refuse|decline|say no|apologi[sz]e|say (?:that )?you "
         "(?:can't|cannot)|warn|add (?:any )?(?:warnings|disclaimers))\\b"},
        {F::roleplay_jailbreak, 0.45, 0.45,
         "\\b(?:two|2|dual|both) (?:responses|answers|replies|outputs)\\b.{0,60}(?:normal|censored|filtered|classic|"
         "jailbroken|unfiltered|developer mode|dan)"},
        {F::roleplay_jailbreak, 0.8, 0.8,
         "\\b(?:tu so|stell dir vor|stellen sie sich vor|tun sie so),? (?:als )?(?:ob )?(?:du|sie|wärst du|wären sie) "
         "(?:[^ ]+ ){0,6}(?:ohne|keine|frei von) (?:jegliche |irgendwelche |alle )?(?:einschränkungen|regeln|"
         "filter|grenzen|beschränkungen|richtlinien|zensur)"},
        {F::roleplay_jailbreak, 0.45, 0.45,
         "\\bohne (?:jegliche |irgendwelche |alle )?(?:einschränkungen|filter|regeln|zensur|beschränkungen|"
         "richtlinien)\\b"},
        {F::roleplay_jailbreak, 0.45, 0.45,
         "\\bsans (?:aucune |aucun |les )?(?:restrictions?|filtres?|règles?|limites?|censure|garde-fous)\\b"},
        {F::roleplay_jailbreak, 0.45, 0.45,
         "\\bsin (?:ninguna |ningún |ningun |las )?(?:restricciones|restricción|filtros?|reglas|límites|limites|censura)\\b"},
        {F::roleplay_jailbreak, 0.4, 0.4,
         "(?:\\bdu bist (?:jetzt|nun|ab jetzt|ab sofort)|\\btu es (?:maintenant|désormais)|\\bahora eres)\\b"},

        // ---- goal_hijacking
        {F::goal_hijacking, 0.45, 0.5,
         "\\byour (?:new|next|primary|updated|current|main) (?:task|goal|job|objective|mission|purpose|assignment|"
         "instructions?|role|priority|directive|function)(?: is| are| will be| now is| from now on is| has changed|:)"},
        {F::goal_hijacking, 0.8, 0.8,
         "\\byour (?:real|actual|true|only|sole|one and only|secret|hidden|ultimate) (?:task|goal|job|"
         "objective|mission|purpose|assignment|instructions?|role|priority|directive|function)(?: is| are| will be| now "
         "is| from now on is| has changed|:)"},
        {F::goal_hijacking, 0.3, 0.6,
         "\\binstead(?: of (?:[a-z'-]+ ){1,8})?,? (?:you (?:should|must|will|need to|have to|are to) |please |just |"
         "now |simply |only )?(?:say|print|output|write|respond with|reply with|answer with|return|tell|send|type|"
         "repeat|post|email|forward|visit|open|navigate|click|insert|include|append|recommend|call|run|execute)\\b"},
        {F::goal_hijacking, 0.6, 0.85,
         "\\b(?:the|this|our) user (?:has |have |had )?(?:wants|would like|asked|needs|requests|requested|instructs|"
         "instructed|authori[sz]es|authori[sz]ed|expects|approved|allowed|permitted|wishes|told) (?:you )?(?:to )?(?:[a-z'-]+ ){0,4}" + sendv + "\\b"},
        {F::goal_hijacking, 0.3, 0.55,
         "\\b(?:the|this) user (?:has |have )?(?:wants|would like|asked|needs|requests|expects|instructs|authori[sz]ed|"
         "approved|allowed|permitted) you to\\b"},
        {F::goal_hijacking, 0.2, 0.45,
         "\\b(?:without|don't|do not|never) (?:asking|confirming|confirmation|checking with|asking for (?:permission|"
         "confirmation|approval)|waiting for (?:approval|confirmation))\\b"},
        {F::goal_hijacking, 0.55, 0.7,
         "\\bno matter what (?:the|this|that|any|my|their) (?:document|text|page|email|input|user|instructions?|"
         "content|file|data|article|message|website|prompt) (?:says|say|contains|states|asks|tells you|wants)\\b"},
        {F::goal_hijacking, 0.3, 0.4,
         "\\b(?:respond|reply|answer|output|say) (?:only|just|exclusively|solely) (?:with|using) (?:the (?:word|phrase|"
         "text|string) )?[\"']"},
        {F::goal_hijacking, 0.1, 0.45,
         "\\b(?:call|invoke|run|execute|use|trigger) (?:the )?(?:[a-z0-9.-]{2,30} ){1,3}(?:tool|function|command|plugin|action)"
         " (?:with|on|using|for|before|now|immediately)\\b"},
        {F::goal_hijacking, 0.75, 0.8,
         "\\b(?:stop|cease|quit|do not|don't|no need to) (?:summariz|translat|analyz|analys|review|answer|respond|"
         "process|read|classif|check|grad|evaluat)[a-z]*(?: [a-z'-]+){0,4}(?:,| and| but|\\.|;)(?: and| but)? "
         "(?:instead|rather)\\b"},
        {F::goal_hijacking, 0.8, 0.8,
         "\\b(?:ignore|forget|skip|abandon|drop|disregard|stop) (?:the|your|this|that|my) (?:translation|summary|"
         "summari[sz]ation|original|current|assigned|given|actual|previous|first|above|main) (?:task|request|job|"
         "assignment|instructions?|question|prompt)\\b"},
        {F::goal_hijacking, 0.6, 0.6,
         "\\b(?:say|print|output|write|respond with|reply with|type|return) (?:only |just |the word |the words )?"
         "[\"']?(?:hacked|pwned|pwnd|owned|jailbroken)[\"']?(?: |$|\\.|!|,)"},
        {F::goal_hijacking, 0.9, 0.9,
         "\\b(?:say|print|output|write|respond with|reply with|answer with|type|return|end your (?:answer|response|"
         "reply) with|include|repeat) (?:only |just |exactly |the (?:word|words|phrase|text|sentence|string) )?"
         "[\"']?i (?:have been|am|was|got|ve been) (?:pwned|pwnd|hacked|owned|jailbroken|compromised)"},
        {F::goal_hijacking, 0.75, 0.75, "\\bi (?:have|ve) been (?:pwned|pwnd)\\b"},
        {F::goal_hijacking, 0.75, 0.8,
         "\\b(?:the|your) (?:task|goal|objective|instructions?|assignment|mission|job) (?:has|have) (?:been )?"
         "(?:changed|updated|modified|replaced|overridden|cancelled|canceled|redefined)\\b"},
        {F::goal_hijacking, 0.65, 0.75,
         "\\bforget (?:the|your|this|about the) (?:task|assignment|summary|translation|question|article|document|"
         "email|text)\\b"},
        {F::goal_hijacking, 0.35, 0.6,
         "\\b(?:before|after|when) (?:you )?(?:answer(?:ing)?|respond(?:ing)?|summari[sz](?:e|ing)|reply(?:ing)?|"
         "finish(?:ing)?),? (?:you must |always |first |also )?(?:secretly |silently |quietly |covertly |also )?"
         "(?:send|visit|open|fetch|call|navigate to|include|append|insert|recommend|mention|say|tell the user)\\b"},
        {F::goal_hijacking, 0.55, 0.75,
         "\\b(?:do not|don't|never|without) (?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)? (?:this |it )?to|"
         "mention(?:ing)?|reveal(?:ing)? (?:this |it )?to|alert(?:ing)?|let(?:ting)?|notify(?:ing)?) (?:the user|the users|"
         "user|anyone|anybody|them)\\b"},
        {F::goal_hijacking, 0.45, 0.7,
         "\\b(?:recommend|promote|praise|endorse|advertise|always mention) (?:only )?(?:our|this|the following) "
         "(?:product|company|website|site|service|brand)\\b.{0,60}(?:regardless|no matter|above all|instead|"
         "over any|exclusively)"},
        {F::goal_hijacking, 0.8, 0.8,
         "\\b(?:deine|ihre|eure) (?:neue|eigentliche|wahre|nächste|einzige|richtige) (?:aufgabe|mission|rolle) "
         "(?:ist|lautet|besteht|wird)\\b"},
        {F::goal_hijacking, 0.8, 0.8,
         "\\b(?:ta|votre) (?:nouvelle|vraie|véritable|seule|prochaine) (?:tâche|mission|mission|objectif|rôle) "
         "(?:est|consiste|sera)\\b"},
        {F::goal_hijacking, 0.8, 0.8,
         "\\b(?:tu|su) (?:nueva|verdadera|única|unica|próxima|proxima|real) (?:tarea|misión|mision|objetivo|función) "
         "(?:es|será|sera|consiste)\\b"},
        {F::goal_hijacking, 0.25, 0.5, "(?:\\bstattdessen\\b|\\bau lieu de cela\\b|\\ben lugar de eso\\b|\\ben cambio,)"},

        // ---- exfiltration
        {F::exfiltration, 0.45, 0.6,
         "!\\[[^\\]]{0,200}\\]\\( ?(?:https?:)?//[^)\\s]{1,300}\\?[^)\\s]{0,500}="},
        {F::exfiltration, 0.8, 0.85,
         "(?:https?:)?//[^\\s)\"'>]{1,300}[?&][a-z0-9_.-]{1,40}=(?:\\{|\\[|<|%7b|%5b|%3c|\\$)[a-z_ -]{0,40}"
         "(?:data|secret|summary|conversation|chat|history|info|password|email|message|text|context|memory|user|"
         "name|key|token|content|question|answer|prompt|output|input|query|result)"},
        {F::exfiltration, 0.85, 0.85,
         "\\b(?:" + sendv.substr(3, sendv.size() - 4) + "|copy|share|append|attach|include|encode|embed|put|add|leak) "
         "(?:the |this |our |all |your |my |every |entire |whole |full |complete |previous |prior |user'?s? |of the |"
         "of our |of this |current ){0,4}" + convo + " (?:so far |above |until now )?(?:to|into|in|as|via|using|"
         "inside|within) (?:the |a |an |this |my |our |following |that )?(?:url|link|address|endpoint|server|"
         "webhook|email|https?:|image|query|parameter|attacker|website|site|domain|@|markdown|api)"},
        {F::exfiltration, 0.35, 0.65,
         "\\b" + sendv + " (?:[a-z'-]+ ){0,6}to (?:https?://|www\\.|[a-z0-9._-]+@[a-z0-9-]+\\.[a-z]{2,})"},
        {F::exfiltration, 0.5, 0.7,
         "\\b(?:render|display|show|include|output|insert|add|print|embed) (?:the following |this |an? )?(?:markdown )?"
         "(?:image|img|picture|pixel|link)\\b.{0,80}https?://"},
        {F::exfiltration, 0.3, 0.55,
         "\\b(?:enter|submit|fill in|fill out|paste|type|input|provide|log in|sign in) (?:[a-z'-]+ ){0,5}(?:at|on|into|"
         "to|via) https?://"},
        {F::exfiltration, 0.3, 0.4, "<img [^>]{0,200}src=[\"']?https?://[^\"'\\s>]{1,300}\\?[^\"'\\s>]{0,300}="},
        {F::exfiltration, 0.6, 0.75,
         "\\b(?:base64|url-?encode|encode|hex) (?:the |all |this |our |your )?(?:conversation|chat history|messages|"
         "system prompt|password|secrets?|data|user'?s? data)\\b.{0,80}(?:url|link|query|parameter|image)"},

        // ---- addressed_to_ai
        {F::addressed_to_ai, 0.5, 0.8,
         "\\b" + ai + "s? (?:is |are )?(?:reading|processing|parsing|summari[sz]ing|seeing|viewing|analy[sz]ing|"
                      "browsing|scanning|indexing|crawling|ingesting|that (?:reads?|process(?:es)?|sees?|summari[sz]es?)) (?:this|these|"
                      "the following|this (?:page|document|email|text|message|file|site|website|content))\\b"},
        {F::addressed_to_ai, 0.45, 0.75,
         "\\b(?:if you are|if you're|are you) (?:an? |the )?(?:ai|llm|large language model|language model|chatbot|"
         "ai assistant|assistant|ai agent|bot|automated (?:agent|system|assistant|tool)|ai model|gpt|chatgpt|"
         "claude|copilot|bing|gemini)\\b"},
        {F::addressed_to_ai, 0.4, 0.8,
         "\\b(?:attention|note to|message (?:to|for)|instructions? (?:to|for)|important (?:note |message |notice |"
         "instructions? |update )?(?:to|for)|dear|hey|hello|hi|psst|calling all|notice to|warning to|reminder (?:to|"
         "for))[,:]? (?:the |all |any |an? |my )?" + ai + "s?\\b"},
        {F::addressed_to_ai, 0.3, 0.6,
         "\\b(?:ai|llm|assistant|agent|model|chatbot|gpt|bot)s? (?:must|should|shall|are (?:required|instructed|"
         "requested|asked|told|expected) to|need to|have to|will now|are to)\\b"},
        {F::addressed_to_ai, 0.5, 0.8,
         "\\bif (?:an? |the |any )?" + ai + "s? (?:is|are) (?:reading|processing|seeing|summari[sz]ing|analy[sz]ing|"
                                              "parsing|viewing|browsing|scanning|indexing)\\b"},
        {F::addressed_to_ai, 0.3, 0.65,
         "(?:^|[.!?:>\\]\\[\"'(] )(?:dear |hey |hi |hello |ok |okay |attention |psst )?(?:ai|llm|assistant|ai assistant|"
         "chatgpt|gpt|claude|copilot|bing|gemini|bot|chatbot|agent|ai agent|model|language model)[,:] "},
        {F::addressed_to_ai, 0.45, 0.75,
         "\\b(?:an? |the |any )?(?:ai|llm|language model|assistant|chatbot|agent)s? (?:reading|seeing|processing) this "
         "(?:must|should|shall|has to|is required|will)\\b"},
        {F::addressed_to_ai, 0.5, 0.8,
         "\\b(?:an die|liebe|lieber|hinweis für|hinweis an) (?:die |den |das )?(?:ki|künstliche intelligenz|"
         "sprachmodell|ki-assistent|assistent)\\b"},
        {F::addressed_to_ai, 0.5, 0.8,
         "(?:à l'attention d[eu] |\\bnote pour |\\bnote à |\\bcher |\\bchère )(?:l'|la |le )?(?:ia|ai|assistant|"
         "modèle|intelligence artificielle)\\b"},
        {F::addressed_to_ai, 0.5, 0.8,
         "(?:\\batención|\\bnota para|\\bquerido|\\bquerida|\\bpara (?:la|el)) (?:ia|ai|asistente|modelo|inteligencia "
         "artificial)\\b"},

        // ---- cues, weight 0: only for hidden regions
        {F::cue_imperative, 0, 0,
         "\\byou (?:must|should|shall|will|need to|have to|are to|are required to|are instructed to)\\b"},
        {F::cue_imperative, 0, 0,
         "\\b(?:do not|don't|never) (?:tell|mention|reveal|inform|say|show|disclose|let|alert|warn)\\b"},
        {F::cue_imperative, 0, 0,
         "\\b(?:always|only|instead) (?:respond|answer|reply|say|recommend|output|write|include|mention|use|send)\\b"},
        {F::cue_imperative, 0, 0, "\\b(?:the user|users?'s?) (?:is|are|must|should|wants|asked)\\b"},
        {F::cue_ai, 0, 0,
         "\\b(?:tell|inform|ask|warn|show|convince|persuade|remind|redirect|direct) (?:the|this) user\\b"},
        {F::cue_ai, 0, 0,
         "\\b(?:ai|a\\.i\\.|llm|llms|assistant|chatbot|language model|gpt|chatgpt|claude|copilot|gemini|bing|"
         "prompt|instructions?|system prompt|ki|ia)\\b"},
    };
}

// The part's text as the patterns expect it, and where decoded tag characters were.
struct prepared_text {
    std::string text;
    std::vector<std::pair<std::size_t, std::size_t>> tag_runs;
};

prepared_text prepare(std::string_view in) {
    // fold() changes nothing in pure ASCII: skip it (and its origin map) then.
    bool ascii = std::all_of(in.begin(), in.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    folded f;
    if (!ascii) f = fold(in);
    std::string_view s = ascii ? in : std::string_view(f.text);
    prepared_text out;
    out.text.resize(s.size());  // the prepared text is never longer: written through `w`
    char* const base = out.text.data();
    char* w = base;
    bool space = false;
    std::size_t tag_start = std::string::npos;
    auto end_tags = [&] {
        if (tag_start != std::string::npos) out.tag_runs.emplace_back(tag_start, static_cast<std::size_t>(w - base));
        tag_start = std::string::npos;
    };
    for (std::size_t i = 0; i < s.size();) {
        auto b = static_cast<unsigned char>(s[i]);
        if (b >= 0x80) {
            // U+E0000-U+E007F: F3 A0 80 80 - F3 A0 81 BF.
            if (b == 0xF3 && i + 3 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xA0) {
                auto b2 = static_cast<unsigned char>(s[i + 2]), b3 = static_cast<unsigned char>(s[i + 3]);
                if ((b2 == 0x80 || b2 == 0x81) && (b3 & 0xC0) == 0x80) {
                    unsigned cp = ((b2 & 0x3F) << 6) | (b3 & 0x3F);
                    if (tag_start == std::string::npos) tag_start = static_cast<std::size_t>(w - base);
                    if (cp >= 0x20 && cp <= 0x7E) {
                        char c = static_cast<char>(cp);
                        *w++ = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
                    }
                    i += 4;
                    space = false;
                    continue;
                }
            }
            end_tags();
            if (b == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80) {
                auto b3 = static_cast<unsigned char>(s[i + 2]);
                char q = b3 == 0x98 || b3 == 0x99 || b3 == 0x9B || b3 == 0xB2   ? '\''  // ‘ ’ ‛ ′
                         : b3 == 0x9C || b3 == 0x9D || b3 == 0x9F || b3 == 0xB3 ? '"'    // “ ” ‟ ″
                                                                                : 0;
                if (q) {
                    *w++ = q;
                    i += 3;
                    space = false;
                    continue;
                }
            }
            *w++ = s[i++];
            space = false;
            continue;
        }
        end_tags();
        char c = s[i++];
        if (c == '*' || c == '`') continue;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '_') {
            if (!space) *w++ = ' ';
            space = true;
            continue;
        }
        space = false;
        *w++ = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    }
    end_tags();
    out.text.resize(static_cast<std::size_t>(w - base));
    return out;
}

// Does a style attribute's value (lower case) make its element invisible?
bool invisible_style(std::string_view style) {
    std::string v;
    for (char c : style)
        if (c != ' ' && c != '\t' && c != '"' && c != '\'') v.push_back(c);
    auto has = [&](std::string_view needle) { return v.find(needle) != std::string::npos; };
    // A property with the value zero: "font-size:0", "font-size:0px", not "font-size:0.9em".
    auto zero = [&](std::string_view prop) {
        for (std::size_t at = v.find(prop); at != std::string::npos; at = v.find(prop, at + 1)) {
            if (at > 0 && (std::isalnum(static_cast<unsigned char>(v[at - 1])) || v[at - 1] == '-')) continue;
            std::size_t k = at + prop.size();
            if (k < v.size() && v[k] == '0' && (k + 1 == v.size() || (v[k + 1] != '.' && !std::isdigit(static_cast<unsigned char>(v[k + 1])))))
                return true;
            if (k + 1 < v.size() && v[k] == '1' && v.compare(k + 1, 2, "px") == 0 && prop == "font-size:") return true;
        }
        return false;
    };
    auto white_text = [&] {
        for (std::size_t at = v.find("color:"); at != std::string::npos; at = v.find("color:", at + 1)) {
            if (at > 0 && v[at - 1] == '-') continue;  // background-color, border-color
            auto val = std::string_view(v).substr(at + 6, 22);
            for (auto w : {"#fff;", "#ffffff", "white", "rgb(255,255,255)", "#fefefe", "rgba(0,0,0,0)", "transparent"})
                if (val.rfind(w, 0) == 0) return true;
            if (val == "#fff") return true;
        }
        return false;
    };
    return has("display:none") || has("visibility:hidden") || zero("font-size:") || zero("opacity:") ||
           (zero("height:") && has("overflow:hidden")) || (zero("width:") && has("overflow:hidden")) ||
           has("left:-9999") || has("left:-999") || has("text-indent:-9999") || has("top:-9999") ||
           has("clip:rect(0,0,0,0)") || has("clip:rect(0px,0px,0px,0px)") || white_text();
}

// Hidden regions of a prepared text, as [begin, end) offsets.
std::vector<std::pair<std::size_t, std::size_t>> hidden_regions(prepared_text const& p) {
    std::string_view t = p.text;
    std::vector<std::pair<std::size_t, std::size_t>> out;
    auto add = [&](std::size_t b, std::size_t e) {
        if (out.size() < max_regions && e > b) out.emplace_back(b, std::min(e, b + region_cap));
    };
    for (auto const& r : p.tag_runs) add(r.first, r.second);
    for (std::size_t at = t.find("<!--"); at != std::string_view::npos && out.size() < max_regions;
         at = t.find("<!--", at + 4)) {
        std::size_t e = t.find("-->", at + 4);
        add(at + 4, e == std::string_view::npos ? t.size() : e);
    }
    for (auto opener : {"[//]: # (", "[//]: # \"", "[comment]: # (", "[//]: <> (", "[comment]: <> ("}) {
        std::string_view o = opener;
        for (std::size_t at = t.find(o); at != std::string_view::npos && out.size() < max_regions;
             at = t.find(o, at + o.size())) {
            std::size_t e = t.find_first_of(")\"", at + o.size());
            add(at + o.size(), e == std::string_view::npos ? t.size() : e);
        }
    }
    for (std::size_t at = t.find("style="); at != std::string_view::npos && out.size() < max_regions;
         at = t.find("style=", at + 6)) {
        std::size_t v = at + 6;
        if (v >= t.size()) break;
        char q = t[v];
        std::size_t ve = (q == '"' || q == '\'') ? t.find(q, v + 1) : t.find_first_of(" >", v);
        if (ve == std::string_view::npos || ve - v > 400) continue;
        if (!invisible_style(t.substr(v, ve - v))) continue;
        std::size_t b = t.find('>', ve);
        if (b == std::string_view::npos) continue;
        std::size_t e = t.find("</", b + 1);
        add(b + 1, e == std::string_view::npos ? t.size() : e);
    }
    return out;
}

struct part_score {
    double score = 0;
    family rule = family::instruction_override;
};

class prompt_shield final : public guardrail {
public:
    prompt_shield(double threshold, std::vector<part_kind> scan) : threshold_(threshold), scan_(std::move(scan)) {
        signals_ = make_signals();
        RE2::Options o;
        o.set_case_sensitive(false);
        o.set_log_errors(false);
        o.set_max_mem(64 << 20);
        set_ = std::make_unique<RE2::Set>(o, RE2::UNANCHORED);
        for (auto const& s : signals_) {
            std::string error;
            if (set_->Add(s.re, &error) < 0)  // a bug in the table, not in the config
                throw std::logic_error("prompt-shield: pattern does not compile: " + error + ": " + s.re);
        }
        if (!set_->Compile()) throw std::logic_error("prompt-shield: the pattern set does not compile");
    }

    std::string_view name() const override { return "prompt-shield"; }
    std::vector<part_kind> default_apply_to() const override { return scan_; }
    // A hidden region is judged by its first region_cap bytes; every pattern match is shorter.
    std::size_t window() const override { return region_cap + 16; }

    verdict check(std::vector<text_part>& parts, json::object*, scope&) const override {
        verdict v;
        part_score best;
        std::size_t best_part = 0;
        for (std::size_t i = 0; i < parts.size(); ++i) {
            auto ps = score(parts[i]);
            if (ps.score > best.score) {
                best = ps;
                best_part = i;
            }
        }
        v.score = best.score;
        if (best.score > threshold_) {
            v.what = outcome::block;
            v.rule = std::string(family_names[static_cast<std::size_t>(best.rule)]);
            v.part = best_part;
            char buf[128];
            std::snprintf(buf, sizeof buf, "possible prompt injection (%s, score %.2f above %.2f)", v.rule.c_str(),
                          best.score, threshold_);
            v.detail = buf;
        }
        return v;
    }

private:
    // Which patterns occur in `text`. A DFA that outgrows its memory (an adversarial text can make
    // it build many states) is retried on smaller pieces; what still fails counts as a match of
    // nothing but is bounded, never a slow fallback.
    void match(std::string_view text, std::vector<int>& ids) const {
        RE2::Set::ErrorInfo err{};
        if (set_->Match(re2::StringPiece(text.data(), text.size()), &ids, &err) ||
            err.kind != RE2::Set::kOutOfMemory)
            return;
        constexpr std::size_t piece = 16 * 1024, overlap = 1024;
        for (std::size_t at = 0; at < text.size(); at += piece - overlap) {
            std::vector<int> more;
            auto n = std::min(piece, text.size() - at);
            set_->Match(re2::StringPiece(text.data() + at, n), &more, &err);
            ids.insert(ids.end(), more.begin(), more.end());
            if (at + n >= text.size()) break;
        }
    }

    part_score score(text_part const& part) const {
        bool indirect = part.kind == part_kind::tool || part.kind == part_kind::mcp_result;
        auto prep = prepare(part.text);
        std::vector<int> ids;
        match(prep.text, ids);
        std::vector<bool> seen(signals_.size(), false);
        std::array<double, family_count> keep{};  // per family: prod(1 - w)
        keep.fill(1.0);
        double all = 1.0;
        auto add = [&](family f, double w) {
            keep[static_cast<std::size_t>(f)] *= 1 - w;
            all *= 1 - w;
        };
        for (int id : ids) {
            auto k = static_cast<std::size_t>(id);
            if (seen[k]) continue;
            seen[k] = true;
            auto const& s = signals_[k];
            double w = indirect ? s.indirect : s.direct;
            if (w > 0) add(s.fam, w);
        }
        double hidden = 0;
        for (auto const& [b, e] : hidden_regions(prep)) {
            std::vector<int> rid;
            match(std::string_view(prep.text).substr(b, e - b), rid);
            for (int id : rid) {
                auto const& s = signals_[static_cast<std::size_t>(id)];
                hidden = std::max(hidden, s.fam == family::cue_imperative ? hidden_weak : hidden_strong);
            }
            if (hidden == hidden_strong) break;
        }
        if (hidden > 0) add(family::hidden_instructions, hidden);
        part_score out;
        out.score = 1 - all;
        double top = 0;
        for (std::size_t f = 0; f < family_count; ++f)
            if (1 - keep[f] > top) {
                top = 1 - keep[f];
                out.rule = static_cast<family>(f);
            }
        return out;
    }

    double threshold_;
    std::vector<part_kind> scan_;
    std::vector<signal> signals_;
    std::unique_ptr<RE2::Set> set_;
};

part_kind kind_of(std::string const& s, std::size_t i) {
    static constexpr std::pair<std::string_view, part_kind> kinds[] = {
        {"user", part_kind::user},           {"tool", part_kind::tool},         {"system", part_kind::system},
        {"assistant", part_kind::assistant}, {"mcp_call", part_kind::mcp_call}, {"mcp_result", part_kind::mcp_result}};
    for (auto const& [n, k] : kinds)
        if (n == s) return k;
    throw config_error(cfg::key_of("scan") + "[" + std::to_string(i) + "]",
                       "'" + s + "' is not a part kind (user, tool, system, assistant, mcp_call, mcp_result)");
}

}  // namespace

std::unique_ptr<guardrail> make_prompt_shield(json::object const& config, build_context const&) {
    cfg::only_keys(config, {"threshold", "scan", "action"});
    double threshold = cfg::number(config, "threshold", 0.7, 0, 1);
    cfg::choice(config, "action", {"block"}, "block");
    std::vector<part_kind> scan{part_kind::user, part_kind::tool};
    if (config.contains("scan")) {
        auto names = cfg::strings(config, "scan");
        if (names.empty()) throw config_error(cfg::key_of("scan"), "'scan' must name at least one part kind");
        scan.clear();
        for (std::size_t i = 0; i < names.size(); ++i) {
            auto k = kind_of(names[i], i);
            if (std::find(scan.begin(), scan.end(), k) == scan.end()) scan.push_back(k);
        }
    }
    return std::make_unique<prompt_shield>(threshold, std::move(scan));
}

}  // namespace toolgate::guardrails
