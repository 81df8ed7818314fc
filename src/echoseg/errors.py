"""The one exception type users see: a one-line message naming the file and the problem, and
how a foreign exception becomes one short plain line inside such a message."""

from __future__ import annotations

import re

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b")
MAX_REASON = 200  # characters of a foreign error message quoted in ours


class EchosegError(Exception):
    """A user-facing error; the CLI prints ``echoseg: error: <message>`` and exits with code 2."""


class DataError(EchosegError):
    """Bad input data: a missing, unreadable or inconsistent file or folder."""


class ConfigError(EchosegError):
    """A configuration key or value that is not valid."""


def plain_reason(exc: BaseException, limit: int = MAX_REASON) -> str:
    """A foreign exception as one short plain line: no terminal escapes, whitespace collapsed,
    a header line ending in ':' joined to its first detail, only the first sentence, and cut
    at a word boundary (with '...') when longer than ``limit`` characters."""
    if isinstance(exc, KeyError) and exc.args:
        return f"no entry {short_name(exc.args[0])}"
    lines = [" ".join(line.split()) for line in ANSI_ESCAPE.sub("", str(exc)).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    # the first sentence: torch appends paragraphs of advice after it
    return shorten(re.split(r"(?<=[a-z)])\. ", text, maxsplit=1)[0].rstrip("."), limit)


def shorten(text: str, limit: int = MAX_REASON) -> str:
    """``text`` if it has at most ``limit`` characters, else cut at the last space before
    the limit, without trailing punctuation, followed by '...'."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.") + "..."


def short_name(key: object) -> str:
    """A tensor or entry name fit for a message (hostile names are long or hold newlines)."""
    text = key if isinstance(key, str) else repr(key)
    if len(text) > 100 or not text.isprintable():
        return f"a {len(text)}-character name" if len(text) > 100 else repr(text)
    return text
