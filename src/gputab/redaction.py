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
from collections.abc import Callable, Iterable, Iterator

MASK = "***"
MAX_CMDLINE_CHARS = 4096
"""Longer command lines are cut (after redaction) so one process cannot bloat every row that shows it."""
MAX_ARG_SCAN = 4096
"""Only this many characters of one argument are read; the rest is dropped and the cut marked with ``…``."""
MAX_SCAN_CHARS = MAX_CMDLINE_CHARS
"""Arguments after this many characters of the command line are not read (they could not be shown)."""
MAX_SCAN_ARGS = 512
"""Arguments after this many are not read either (thousands of `-v` would fill the line anyway)."""
CUT = "…"

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

# Every secret name above holds one of these (lower-cased): most names hold none and are passed at once.
_SECRET_HINT = re.compile(r"pass|pwd|auth|credential|cookie|bearer|token|secret|key", re.IGNORECASE)

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
# the secret (`https://oauth2:TOKEN@gitlab...`, `https://TOKEN@github.com/...`). The scheme is not matched: a
# pattern that reads it tries every letter of a long word as its start, which costs the square of the length
# (a 120 KiB argument took a minute); from `://` the user-info scan stops at the next `/`, so each character is
# read once.
_URL_USERINFO = re.compile(r"://[^/@\s]+@")
# Where an argument cut at MAX_ARG_SCAN may end: a partial secret never survives a cut, because the cut goes back
# to one of these (token shapes, `--name=value` and `Bearer` values hold none of them).
_CUT_BACK = re.compile(r"[\s,;\"'(){}\[\]]")
_NAME_EQ = re.compile(r"-{0,2}[A-Za-z_][A-Za-z0-9_.-]*=")
# A cut inside a URL's user-info (no `/` or `@` after its `://` yet) would leave a partial user name or password.
_OPEN_USERINFO = re.compile(r"://[^/@\s]*\Z")
_AUTH_SCHEMES = {"bearer", "basic", "token", "digest"}
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}")
# `--name=value`, `-n=value`, `NAME=value`: the name is an identifier-like word.
_ASSIGNMENT = re.compile(r"^(-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)=(.+)$", re.DOTALL)
# `--name` or `Name:` expecting its value in the next word.
_FLAG = re.compile(r"^(?:-{1,2}([A-Za-z_][A-Za-z0-9_.-]*)|([A-Za-z_][A-Za-z0-9_.-]*):)$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./*-]+$")
_WORD_SEP = re.compile(r"[-_.]+")
_SPACE = re.compile(r"\s")
_SPACES = re.compile(r"(\s+)")


def is_secret_name(name: str) -> bool:
    """Whether a flag, variable or header ``name`` looks like it holds a secret.

    Only the last word(s) count, so ``--token`` and ``HF_TOKEN`` are secret while ``--tokenizer``,
    ``--max-tokens`` and ``--password-file`` (a path) are not.
    """
    if not _SECRET_HINT.search(name):
        return False
    words = [w for w in _WORD_SEP.split(_CAMEL.sub("_", name.lstrip("-")).lower()) if w]
    if not words:
        return False
    last = words[-1]
    if last in _SECRET_LAST or last.endswith(_SECRET_SUFFIXES):
        return True
    return len(words) >= 2 and (words[-2], last) in _SECRET_PAIRS


def _scrub(text: str) -> str:
    """Mask the secrets that are recognisable by their own shape, wherever they occur."""
    text = _URL_USERINFO.sub("://" + MASK + "@", text)
    return _TOKEN_SHAPES.sub(MASK, text)


def _secret_flag(word: str) -> str | None:
    """``"flag"`` for a flag whose value follows it (``--token``), ``"header"`` for ``Authorization:``, else None."""
    if not (word.startswith("-") or word.endswith(":")):
        return None  # most words: no need to run the pattern
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


def _mask_assignment(word: str) -> str:
    """Mask the value of one whitespace-free word that is a secret ``NAME=value`` assignment."""
    m = _ASSIGNMENT.match(word) if "=" in word else None
    if m and is_secret_name(m.group(1)):
        return f"{m.group(1)}={MASK}"
    return word


def _redact_word(word: str) -> str:
    """Redact one whitespace-free word: a secret ``NAME=value`` assignment, then token shapes and URLs."""
    return _scrub(_mask_assignment(word))


def _redact_arg(arg: str) -> str:
    """Redact one argument; an argument with spaces (``sh -c "..."``, a rewritten title) is redacted word by word."""
    # `Bearer TOKEN` spans two words, so it is masked before the argument is split.
    arg = _BEARER.sub(lambda m: m.group(1) + m.group(2) + MASK, arg)
    if not _SPACE.search(arg):
        return _redact_word(arg)
    # Keep the separators so the text reads as it was; even indexes are words, odd ones whitespace.
    parts = _SPACES.split(arg)
    parts[0::2] = _redact_sequence(parts[0::2], _mask_assignment)
    # Token shapes and URL user-info never span whitespace: one pass over the argument finds them in every word.
    return _scrub("".join(parts))


def _scan_prefix(arg: str) -> tuple[str, bool]:
    """The part of ``arg`` that redaction reads, and whether it was cut.

    An argument longer than :data:`MAX_ARG_SCAN` (a glob of data shards, an inline JSON config) is cut there and
    then back to the last separator, so a secret that straddles the cut is dropped whole rather than shown in
    part: redaction then costs time linear in what is shown, never in what a process put in its arguments.
    """
    if len(arg) <= MAX_ARG_SCAN:
        return arg, False
    head = arg[:MAX_ARG_SCAN]
    m = _CUT_BACK.search(head[::-1])
    if m:
        head = head[: len(head) - m.start()]
    else:
        named = _NAME_EQ.match(head)  # `--shards=<128 KiB>`: the name stays, the value goes
        head = named.group(0) if named else ""
    open_url = _OPEN_USERINFO.search(head)
    if open_url:
        head = head[: open_url.start()]
    return head, True


def _bounded(args: Iterable[object]) -> Iterator[tuple[str, bool]]:
    """The arguments redaction reads, each cut to its scanned prefix; stops after :data:`MAX_SCAN_CHARS` characters
    or :data:`MAX_SCAN_ARGS` arguments.

    Yields ``("", True)`` in place of the arguments left unread, so the line shows that it was cut.
    """
    budget = MAX_SCAN_CHARS
    for n, a in enumerate(args):
        if budget <= 0 or n >= MAX_SCAN_ARGS:
            yield "", True
            return
        whole = a if isinstance(a, str) else str(a)
        text, cut = _scan_prefix(whole)
        budget -= len(text) + 1
        yield text, cut


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
        One printable line of at most :data:`MAX_CMDLINE_CHARS` characters. Only a bounded prefix of the command
        line is read (see :func:`_scan_prefix`), so the time taken is bounded however long the arguments are;
        ``…`` marks where an argument, or the line, was cut.
    """
    # The flag/value pairing spans arguments (`--token` `VALUE`) as well as words inside one argument.
    scanned = list(_bounded(args))
    if scanned and scanned[-1] == ("", True):
        scanned.pop()
        tail = " " + CUT
    else:
        tail = ""
    redacted = _redact_sequence((text for text, _ in scanned), _redact_arg)
    words = [
        (quote_arg(w) if w or not cut else "") + (CUT if cut else "")
        for w, (_, cut) in zip(redacted, scanned, strict=True)
    ]
    line = " ".join(words) + tail
    if len(line) > MAX_CMDLINE_CHARS:
        line = line[: MAX_CMDLINE_CHARS - 1] + "…"
    return line
