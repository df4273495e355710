"""Command-line redaction: a process's command line becomes a string that is safe to show and to store.

Command lines are shown in the TUI, stored in the database and exported, often to people other than the
process's owner; they also routinely carry API keys (``--wandb-api-key=...``, ``HF_TOKEN=... python ...``). So
every command line that leaves attribution goes through :func:`redact_cmdline` first.

Redaction is best effort and errs towards hiding: the value of any flag, ``KEY=value`` pair or ``Header: value``
whose name looks secret, any string shaped like a well-known token, and the user-info part of URLs become ``***``.
A secret inside program text (``python -c "os.environ['X'] = 'abc'"``) is only caught if it has a known shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

MASK = "***"
MAX_CMDLINE_CHARS = 4096
"""Longer command lines are cut (after redaction) so one process cannot bloat every row that shows it."""

# Last word of a name that marks its value as secret: `--password`, `HF_TOKEN`, `client_secret`, `--auth`.
_SECRET_LAST = {"pass", "pwd", "auth", "authorization", "credential", "credentials", "cookie", "bearer"}
# Endings that mark a secret even glued to other words: `PGPASSWORD`, `accesstoken`, `openaiapikey`.
_SECRET_SUFFIXES = ("password", "passwd", "token", "secret", "apikey")
# Two last words that mark a secret: `--wandb-api-key`, `AWS_SECRET_ACCESS_KEY`, `--private-key`.
_SECRET_PAIRS = {
    ("api", "key"),
    ("access", "key"),
    ("secret", "key"),
    ("private", "key"),
    ("session", "key"),
    ("auth", "key"),
    ("account", "key"),
    ("master", "key"),
    ("client", "key"),
}

# Well-known token shapes, found anywhere. Minimum lengths keep ordinary words (`hf_hub`, `sk-learn`) out.
_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"hf_[A-Za-z0-9]{16,}"  # Hugging Face
    r"|sk-[A-Za-z0-9_-]{16,}"  # OpenAI, Anthropic
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r")"
)
# `scheme://user:password@host` and `scheme://token@host`: the whole user-info goes, since either part may be
# the secret (`https://oauth2:TOKEN@gitlab...`, `https://TOKEN@github.com/...`).
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_AUTH_SCHEMES = {"bearer", "basic", "token", "digest"}
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}")
# `--name=value`, `-n=value`, `NAME=value`: the name is an identifier-like word.
_ASSIGNMENT = re.compile(r"^(-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)=(.+)$", re.DOTALL)
# `--name` or `Name:` expecting its value in the next word.
_FLAG = re.compile(r"^(?:-{1,2}([A-Za-z_][A-Za-z0-9_.-]*)|([A-Za-z_][A-Za-z0-9_.-]*):)$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./*-]+$")


def is_secret_name(name: str) -> bool:
    """Whether a flag, variable or header ``name`` looks like it holds a secret.

    Only the last word(s) count, so ``--token`` and ``HF_TOKEN`` are secret while ``--tokenizer``,
    ``--max-tokens`` and ``--password-file`` (a path) are not.
    """
    words = [w for w in re.split(r"[-_.]+", _CAMEL.sub("_", name.lstrip("-")).lower()) if w]
    if not words:
        return False
    last = words[-1]
    if last in _SECRET_LAST or last.endswith(_SECRET_SUFFIXES):
        return True
    return len(words) >= 2 and (words[-2], last) in _SECRET_PAIRS


def _scrub(text: str) -> str:
    """Mask the secrets that are recognisable by their own shape, wherever they occur."""
    text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    return _TOKEN_SHAPES.sub(MASK, text)


def _secret_flag(word: str) -> str | None:
    """``"flag"`` for a flag whose value follows it (``--token``), ``"header"`` for ``Authorization:``, else None."""
    f = _FLAG.match(word)
    if not f or not is_secret_name(f.group(1) or f.group(2)):
        return None
    return "flag" if f.group(1) else "header"


def _redact_sequence(items: Iterable[str], redact_one: Callable[[str], str]) -> list[str]:
    """Redact items in order, masking the item after a secret flag (``--token VALUE``).

    A long flag right after a secret flag is kept: the secret flag had no value (``--auth --verbose``).
    """
    out: list[str] = []
    pending: str | None = None  # the kind of secret flag whose value comes next
    for item in items:
        if pending == "header" and item.lower() in _AUTH_SCHEMES:
            out.append(item)  # `Authorization: Bearer TOKEN`: the scheme is no secret, the word after it is
            pending = "flag"
            continue
        if pending and item and not item.startswith("--"):
            out.append(MASK)
            pending = None
            continue
        pending = _secret_flag(item)
        out.append(redact_one(item))
    return out


def _redact_word(word: str) -> str:
    """Redact one whitespace-free word: a secret ``NAME=value`` assignment, then token shapes and URLs."""
    m = _ASSIGNMENT.match(word)
    if m and is_secret_name(m.group(1)):
        return f"{m.group(1)}={MASK}"
    return _scrub(word)


def _redact_arg(arg: str) -> str:
    """Redact one argument; an argument with spaces (``sh -c "..."``, a rewritten title) is redacted word by word."""
    # `Bearer TOKEN` spans two words, so it is masked before the argument is split.
    arg = _BEARER.sub(lambda m: m.group(1) + m.group(2) + MASK, arg)
    if not re.search(r"\s", arg):
        return _redact_word(arg)
    # Keep the separators so the text reads as it was; even indexes are words, odd ones whitespace.
    parts = re.split(r"(\s+)", arg)
    parts[0::2] = _redact_sequence(parts[0::2], _redact_word)
    return "".join(parts)


def quote_arg(arg: str) -> str:
    """Quote one argument like ``shlex.quote`` for reading, with control characters escaped.

    ``***`` stays unquoted, and an argument holding control characters (newlines in ``python -c`` code, or
    terminal escapes in a hostile process's arguments) is written as ``$'...'`` with escapes, so it can neither
    break a table row nor drive the terminal that shows it.
    """
    if arg and _SAFE.match(arg):
        return arg
    if arg.isprintable():
        return "'" + arg.replace("'", "'\"'\"'") + "'"
    escaped = []
    for ch in arg:
        if ch in "\\'":
            escaped.append("\\" + ch)
        elif ch == "\n":
            escaped.append("\\n")
        elif ch == "\t":
            escaped.append("\\t")
        elif ch.isprintable():
            escaped.append(ch)
        else:
            code = ord(ch)
            escaped.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return "$'" + "".join(escaped) + "'"


def redact_cmdline(args: Iterable[str]) -> str:
    """Join a command line's arguments with shell-like quoting, secrets replaced by ``***``.

    Args:
        args: the arguments as the host reports them (``argv``).

    Returns:
        One printable line of at most :data:`MAX_CMDLINE_CHARS` characters.
    """
    # The flag/value pairing spans arguments (`--token` `VALUE`) as well as words inside one argument.
    redacted = _redact_sequence((str(a) for a in args), _redact_arg)
    line = " ".join(quote_arg(w) for w in redacted)
    if len(line) > MAX_CMDLINE_CHARS:
        line = line[: MAX_CMDLINE_CHARS - 1] + "…"
    return line
