"""The step texts of the gold procedure (and the groups the checker's
messages show). `read` (word, k) -> the k-th letter is `letter_at` for the
gold steps; corrupt.py passes one that misreads a letter."""

from __future__ import annotations

from collections.abc import Callable

from tripost.tasks.word_sorting.words import letter_at, letter_value, ordinal

Read = Callable[[str, int], str]


def quote(word: str) -> str:
    return f'"{word}"'


def show_group(words: tuple[str, ...] | list[str]) -> str:
    if len(words) == 1:
        return quote(words[0])
    sep = " = " if len(set(words)) == 1 else " ? "
    return "[" + sep.join(quote(w) for w in words) + "]"


def _items(words: tuple[str, ...] | list[str], k: int, read: Read = letter_at) -> str:
    return ", ".join(f'{quote(w)}="{read(w, k)}" ({letter_value(read(w, k))})' for w in words)


def letters_step(words: tuple[str, ...] | list[str], k: int, whole: bool, read: Read = letter_at) -> str:
    if whole:
        return f"The {ordinal(k)} letter: {_items(words, k, read)}."
    return f"Now sort this subpart {show_group(words)} by looking at their {ordinal(k)} letters: {_items(words, k, read)}."


def bucket_by_letter(words: tuple[str, ...] | list[str], k: int, read: Read = letter_at) -> list[tuple[str, ...]]:
    """Words grouped by their k-th letter, groups in string order of that
    letter (the missing letter "" first, then by code point: for a-z the
    alphabet), words inside a group in the order given."""
    by: dict[str, list[str]] = {}
    for w in words:
        by.setdefault(read(w, k), []).append(w)
    return [tuple(by[c]) for c in sorted(by)]


def order_step(buckets: list[tuple[str, ...]], k: int, read: Read = letter_at) -> str:
    parts = [f"({letter_value(read(b[0], k))}) {show_group(b)}" for b in buckets]
    return f"We now have: {' < '.join(parts)}."


def hence_step(sorted_words: list[str]) -> str:
    out = quote(sorted_words[0])
    for a, b in zip(sorted_words, sorted_words[1:]):
        out += (" = " if a == b else " < ") + quote(b)
    return f"Hence, we have {out}."
