"""Reading a word-sorting answer: plain words lose the punctuation around
them, any other token is read against the problem's own words, so that
"ph.d" and "ph.d." stay apart."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tripost.tasks.word_sorting.words import DECORATION, PLAIN_RE

def normalise(text: str) -> str | None:
    """An answer as lower-case tokens joined by spaces. Plain words (a-z) lose
    the quotes, brackets, periods and commas around them ("Car, card." ->
    "car card"), as they always have. A token with other characters inside
    ("shouldn't", "ph.d.", "1,000") is kept whole bar `_trim`: its periods,
    apostrophes and commas may belong to the word, and `answer_words` reads
    it against the problem's words."""
    out: list[str] = []
    for chunk in text.strip().lower().split():
        parts = [p.strip(DECORATION) for p in re.split(r"[,;]+", chunk)]
        if all(not p or PLAIN_RE.match(p) for p in parts):
            out += [p for p in parts if p]
        else:
            out.append(_trim(chunk))
    return " ".join(out) or None


def _trim(token: str) -> str:
    """`["ph.d.",` -> `ph.d.`: quotes (never part of a word), brackets and
    separators around it, and a period after a closing quote or bracket go.
    (A word that does end in a bracket is still found by its bare form.)"""
    prev = None
    while token != prev:
        prev = token
        token = token.strip('"[],;')
        if token.endswith(('".', '].')):
            token = token[:-1]
    return token


@dataclass(frozen=True)
class Vocab:
    """A problem's words, and each word by its bare form (no quotes, brackets,
    periods or apostrophes at its ends) when only one word has that form."""

    words: frozenset[str]
    by_bare: dict[str, str]

    @classmethod
    def of(cls, words: list[str] | tuple[str, ...]) -> "Vocab":
        bare: dict[str, set[str]] = {}
        for w in words:
            bare.setdefault(w.strip(DECORATION + ",;"), set()).add(w)
        return cls(frozenset(words), {k: next(iter(v)) for k, v in bare.items() if len(v) == 1})


def _resolve(token: str, vocab: Vocab) -> list[str]:
    """The problem word(s) an answer token stands for: itself if it is one,
    else itself without decoration around it, else its comma-separated parts,
    else the one word with its bare form; an unknown token stays and will
    not match."""
    if token in vocab.words:
        return [token]
    bare = token.strip(DECORATION + ",;")
    if not bare:
        return []  # only quotes, brackets or separators
    for chars in ("[]", "[],;", "[],;.", "[],;.'"):
        if token.strip(chars) in vocab.words:
            return [token.strip(chars)]
    if "," in token or ";" in token:
        return [w for part in re.split(r"[,;]+", token) if part for w in _resolve(part, vocab)]
    return [vocab.by_bare.get(bare, bare)]


def answer_words(text: str, vocab: Vocab) -> list[str]:
    """The words an answer lists, read against the problem's words: exact for
    words with periods or apostrophes inside ("ph.d" and "ph.d." stay apart).
    A plain word with one at an end ("etc.", "'em") is known by its bare form
    when no other word of the list shares it."""
    norm = normalise(text)
    return [w for tok in (norm.split() if norm else []) for w in _resolve(tok, vocab)]
