"""Prompt injection: the common English and Chinese phrasings of "forget your rules" and "show me
your prompt", matched on a normalised copy of the text.

Normalising first (NFKC folds full-width letters; case folded; zero-width and control characters
dropped; spacing collapsed, and removed between Chinese characters) keeps the patterns few while
"ＩＧＮＯＲＥ  previous\u200binstructions" or "忽 略 之 前 的 指 令" still match. Patterns name the
target (instructions, rules, the system prompt), so "ignore my last message" is not a hit.
"""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"\s{2,}|[^\S ]")  # runs of spacing, and any that is not " "
_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}]) (?=[{_CJK}])")


def _any(words: str) -> str:
    return "(?:" + "|".join(words.split()) + ")"


_EN_WEAK = r"(?:" + _any("the my of these those given old existing current and") + r"\s*)*"
_EN_STRONG = _any(
    "all any every each your previous prior above earlier preceding former original initial "
    "system developer safety"
)
# At least one word that points at the assistant's own setup: "ignore the rules" alone is no hit.
_EN_ALL = rf"{_EN_WEAK}{_EN_STRONG}\s*(?:(?:{_EN_STRONG}|the|of|these|those|given)\s*)*"
_EN_RULES = _any(
    "instructions? prompts? rules? directions? directives? guidelines? guardrails? constraints? "
    "restrictions? commands? programming context"
)
_EN_SECRET = (
    _any("system initial hidden original secret developer internal pre-?")
    + r"\s*"
    + _any("prompt message instructions?")
)
_ZH_BEFORE = (
    _any(
        "之前 以前 先前 此前 上面 前面 上述 以上 上文 原来 原有 原本 最初 系统 你的 您的 所有 "
        "全部 一切 任何 的 给你 被给予 设定"
    )
    + "*"
)
_ZH_RULES = _any("指令 指示 提示词 提示 规则 设定 命令 要求 约束 限制 指引 准则 规定 内容 对话")
_ZH_SECRET = _any(
    r"系统提示词 系统提示 系统指令 系统消息 系统设定 初始指令 初始提示 原始指令 隐藏指令 预设指令 "
    r"提示词 system\s*prompt"
)

# (id, words one of which the normalised text must contain, pattern): the words are a cheap
# substring test that spares the patterns most texts.
PATTERNS: list[tuple[str, tuple[str, ...], re.Pattern[str]]] = [
    (
        "en_ignore_instructions",
        ("ignore", "disregard", "forget", "override", "skip", "bypass", "drop", "abandon"),
        re.compile(
            rf"\b(?:ignore|disregard|forget|override|skip|bypass|drop|abandon)\s*"
            rf"(?:about\s+)?{_EN_ALL}{_EN_RULES}\b"
        ),
    ),
    (
        "en_ignore_above",
        ("ignore", "disregard", "forget"),
        re.compile(
            r"\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+)?(?:of\s+)?"
            r"(?:the\s+|what\s+(?:is|was)\s+)?(?:above|everything\s+(?:above|before))\b"
        ),
    ),
    (
        "en_do_not_follow",
        ("follow", "obey"),
        re.compile(rf"\b(?:do\s*n[o']?t|stop)\s+(?:follow|obey)(?:ing)?\s+{_EN_ALL}{_EN_RULES}\b"),
    ),
    (
        "en_reveal_prompt",
        ("prompt", "instruction", "rules", "message"),
        re.compile(
            r"\b(?:reveal|show|print|display|repeat|output|leak|dump|expose|share|disclose|give|tell|"
            r"write\s+out|spell\s+out|recite)\s+(?:me\s+|us\s+)?(?:all\s+|exactly\s+|verbatim\s+)?"
            r"(?:of\s+)?(?:your|the|its)\s+(?:(?:full|entire|exact|complete|whole|original)\s+)?"
            rf"(?:{_EN_SECRET}|instructions|prompt|rules)\b"
        ),
    ),
    (
        "en_what_is_prompt",
        ("prompt", "instruction", "message"),
        re.compile(rf"\bwhat\s+(?:is|are|was|were)\s+(?:your|the)\s+{_EN_SECRET}\b"),
    ),
    (
        "en_new_role",
        ("you are now", "from now on", "act as", "pretend"),
        re.compile(
            r"\b(?:you\s+are\s+now|from\s+now\s+on,?\s+you\s+are|act\s+as|pretend\s+(?:to\s+be|you\s+are))"
            r"\s+(?:an?\s+)?(?:dan|unrestricted|unfiltered|uncensored|jailbroken|evil)\b"
        ),
    ),
    (
        "en_jailbreak",
        ("developer mode", "anything now", "jailbreak", "without any", "safety", "content"),
        re.compile(
            r"\b(?:developer\s+mode\s+(?:enabled|on|activated)|enable\s+developer\s+mode|"
            r"do\s+anything\s+now|jailbreak(?:\s+mode)?\s+(?:enabled|activated|on)|"
            r"without\s+any\s+(?:restrictions|filters|censorship|guidelines)|"
            r"(?:bypass|disable|turn\s+off)\s+(?:your\s+|the\s+|all\s+)*(?:safety|content)\s+"
            r"(?:filters?|restrictions?|guidelines?|policies|policy))\b"
        ),
    ),
    (
        "zh_ignore_instructions",
        ("忽", "无视", "理会", "管", "忘", "抛", "丢弃", "跳过", "绕过", "覆盖"),
        re.compile(
            rf"(?:忽略|忽视|无视|不要理会|别理会|不要管|别管|忘记|忘掉|忘了|抛开|抛弃|丢弃|跳过|绕过|覆盖)"
            rf"(?:掉|了|一下)?{_ZH_BEFORE}{_ZH_RULES}"
        ),
    ),
    (
        "zh_do_not_follow",
        ("遵守", "遵循", "服从", "听从", "执行"),
        re.compile(
            rf"(?:不要|不用|不必|别|停止)(?:再)?(?:遵守|遵循|服从|听从|执行){_ZH_BEFORE}{_ZH_RULES}"
        ),
    ),
    (
        "zh_reveal_prompt",
        ("提示", "指令", "消息", "设定", "system"),
        re.compile(
            rf"(?:泄露|泄漏|透露|显示|输出|打印|告诉我|说出|重复|展示|给我看|发给我|复述|公开|列出)"
            rf"(?:一下|出|出来)?(?:你的|您的|你|您|完整的|全部的|原始的|所有的|的)*{_ZH_SECRET}"
        ),
    ),
    (
        "zh_reveal_prompt_later",
        ("提示", "指令", "消息", "设定", "system"),
        re.compile(
            rf"(?:把|将)(?:你的|您的|你|您)?{_ZH_SECRET}.{{0,12}}?"
            r"(?:告诉|发给|发送给|输出|显示|打印|复述|展示|给我|说出来)"
        ),
    ),
    (
        "zh_what_is_prompt",
        ("提示", "指令", "消息", "设定", "system"),
        re.compile(rf"(?:你的|您的){_ZH_SECRET}(?:是什么|是啥|内容是|有哪些)"),
    ),
    (
        "zh_jailbreak",
        ("模式", "限制", "约束", "审查", "过滤", "越狱"),
        re.compile(
            r"(?:开发者模式|越狱模式|dan模式|进入越狱|不受任何限制|没有任何限制|解除(?:所有|一切|全部)?(?:限制|约束|审查)|"
            r"取消(?:所有|一切|全部)?(?:限制|约束|审查)|绕过(?:安全|内容)?(?:审查|过滤|限制))"
        ),
    ),
    (
        "zh_new_role",
        ("从现在", "现在起"),
        re.compile(
            r"(?:从现在(?:开始|起)|现在起)你(?:是|就是|将是|扮演)(?:一个)?(?:没有|不受|无)(?:任何)?(?:限制|约束|道德)"
        ),
    ),
]


_GATE_WORDS = tuple({gate for _, gates, _ in PATTERNS for gate in gates})


def _gates_in(plain: str) -> set[str]:
    # One flat pass of substring tests (C speed; measured faster than one regex of them all).
    return {gate for gate in _GATE_WORDS if gate in plain}


def may_hold_injection(texts: list[str]) -> bool:
    """Whether any of the texts holds a gate word: one pass over them all, which spares a
    request of many turns (an agent's) the patterns when none does. Exact in that direction:
    a gate word in one normalised text is in the normalised whole."""
    return bool(_gates_in(normalise("\n".join(texts))))


def normalise(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = _SPACES.sub(" ", _INVISIBLE.sub("", text).casefold())
    return text if text.isascii() else _BETWEEN_CJK.sub("", text)


def find_injection(text: str, *, told: bool = False) -> list[str]:
    """The ids of the patterns the text matches (each id once). `told`: the text instructs the
    engine (a client's system message), where a negated request to reveal is no hit."""
    if not text:
        return []
    plain = normalise(text)
    if not (present := _gates_in(plain)):
        return []
    return [
        name
        for name, gates, pattern in PATTERNS
        if not present.isdisjoint(gates) and _hit(name, pattern, plain, told)
    ]


# Instructions often forbid what an attack asks: "never reveal your system prompt", "不要透露系统
# 提示词". In them, a request to reveal right after a negation is no hit.
_REVEALS = frozenset({"en_reveal_prompt", "zh_reveal_prompt", "zh_reveal_prompt_later"})
_NEGATED = re.compile(
    r"(?:\b(?:never|not)|n't|不要|不得|不能|不可|不准|不许|切勿|禁止|严禁|绝不|别|勿)\s*(?:ever\s+)?$"
)


def _hit(name: str, pattern: re.Pattern[str], plain: str, told: bool) -> bool:
    if not told or name not in _REVEALS:
        return pattern.search(plain) is not None
    return any(
        not _NEGATED.search(plain[max(0, m.start() - 16) : m.start()])
        for m in pattern.finditer(plain)
    )
