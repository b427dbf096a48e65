#!/usr/bin/env python3
"""Finds the constructs GCC 12 miscompiles inside C++20 coroutine bodies (README, "Coroutines on
GCC 12"): a braced initializer list (`json::object{{...}}`, `for (x : {a, b})`), a braced temporary
inside a `co_await` expression, a conditional (`c ? f() : g()`) inside a `co_await` expression (GCC
12 destroys the temporary of the branch that was not taken: a free of what was never allocated),
and a `co_await` inside an `&&`/`||` condition.

A coroutine body is the body of a function whose declared return type is `awaitable<...>`. The
check is lexical (comments and strings are blanked first); exit 1 with file:line for each finding.
usage: scripts/check_coroutines.py [DIR...]   (default: the source folders)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRS = ["common", "state", "sessions", "mcp", "providers", "agentloop", "guardrails", "gateway"]

SIGNATURE = re.compile(r"awaitable<[^;{}]*>\s+(?:[\w:~]+::)?[\w~]+\s*\([^;{}]*\)\s*(?:const\s*)?(?:override\s*)?(?:noexcept\s*)?\{")
BRACED_LIST = re.compile(r"[\w>=(,][ \t]*\{[ \t]*\{")           # json::object{{"k", v}}, f({{...}})
FOR_BRACED = re.compile(r"\bfor\s*\([^;)]*:\s*\{")              # for (x : {a, b})
AWAIT_BRACED = re.compile(r"co_await[^;]*?[\w>]\s*\{[^}]")      # co_await f(T{...})
AWAIT_TERNARY = re.compile(r"\?[^;]*?(?<!:):(?!:)")              # co_await f(c ? a() : b())


def blank(text):
    """Comments, string and character literals become spaces (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j])); i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + "".join(ch if ch == "\n" else " " for ch in text[i + 2:j])); i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c); i = j + 1
        else:
            out.append(c); i += 1
    return "".join(out)


def bodies(code):
    for m in SIGNATURE.finditer(code):
        start = m.end() - 1
        depth, j = 0, start
        while j < len(code):
            if code[j] == "{": depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0: break
            j += 1
        yield start, j


def statements(body, offset):
    """(position, text) of each statement-like piece: split at ; { } at any depth, lambdas included."""
    start = 0
    for k, ch in enumerate(body):
        if ch in ";{}":
            yield offset + start, body[start:k + 1]
            start = k + 1


def in_logic(body, at):
    """Is the co_await at `at` an operand of && or || (in the same parenthesised group)?"""
    # Walk left to the start of the innermost group or statement holding it.
    depth, i = 0, at - 1
    while i >= 0:
        c = body[i]
        if c == ")": depth += 1
        elif c == "(":
            if depth == 0: break
            depth -= 1
        elif c in ";{}" and depth == 0: break
        i -= 1
    left = body[i + 1:at]
    # Walk right to the end of that group or statement.
    depth, j = 0, at
    while j < len(body):
        c = body[j]
        if c == "(": depth += 1
        elif c == ")":
            if depth == 0: break
            depth -= 1
        elif c in ";{}" and depth == 0: break
        j += 1
    right = body[at:j]
    def strip(t):  # whole parenthesised groups (calls, the conditions of an if before it) do not count
        while True:
            u = re.sub(r"\([^()]*\)", "", t)
            if u == t:
                return t
            t = u
    return bool(re.search(r"&&|\|\|", strip(left)) or re.search(r"&&|\|\|", strip(right)))


def check(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    code = blank(text)
    found = []
    for s, e in bodies(code):
        body = code[s + 1:e]
        line_of = lambda pos: code.count("\n", 0, pos) + 1
        for pat, what in ((BRACED_LIST, "braced initializer list"), (FOR_BRACED, "range-for over a braced list")):
            for m in pat.finditer(body):
                found.append((line_of(s + 1 + m.start()), what))
        for m in re.finditer(r"\bco_await\b", body):
            stmt_end = body.find(";", m.start())
            stmt_end = len(body) if stmt_end < 0 else stmt_end
            if AWAIT_BRACED.search(body[m.start():stmt_end]):
                found.append((line_of(s + 1 + m.start()), "braced temporary inside a co_await expression"))
            if AWAIT_TERNARY.search(body[m.start():stmt_end]):
                found.append((line_of(s + 1 + m.start()), "conditional (?:) inside a co_await expression"))
            if in_logic(body, m.start()):
                found.append((line_of(s + 1 + m.start()), "co_await inside an && / || condition"))
    return sorted(set(found))


def main():
    dirs = sys.argv[1:] or [os.path.join(ROOT, d) for d in DIRS]
    problems = 0
    for d in dirs:
        for base, _, files in os.walk(d):
            for f in sorted(files):
                if f.endswith((".cpp", ".hpp")):
                    p = os.path.join(base, f)
                    for line, what in check(p):
                        print(f"{os.path.relpath(p, ROOT)}:{line}: {what} in a coroutine body (CONTRIBUTING.md)")
                        problems += 1
    if problems:
        sys.exit(1)
    print("coroutine bodies: no braced lists, braced temporaries or ?: in co_await, or co_await in && / ||")


if __name__ == "__main__":
    main()
