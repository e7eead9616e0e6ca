"""BIG-bench's five settings (books on a shelf, birds on a branch, vehicles
by age, golfers by finish, fruits by price) and how each words positions
and relations, in questions and in the gold rationale."""

from __future__ import annotations

from dataclasses import dataclass

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NUMBER_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
WORD_NUMBERS = {w: n for n, w in NUMBER_WORDS.items()}
ORD = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]
ORD_VALUE = {w: i for i, w in enumerate(ORD) if w}
ORD_VALUE.update({"1st": 1, "2nd": 2, "3rd": 3, "10th": 10})
ORD_VALUE.update({f"{i}th": i for i in range(4, 10)})

PREAMBLE = (
    "The following paragraphs each describe a set of {n} objects arranged in a fixed order. "
    "The statements are logically consistent within each paragraph."
)


@dataclass(frozen=True)
class Scene:
    """One of BIG-bench's five settings and its wording. Position 1 is the
    scene's natural start (leftmost, oldest, first, cheapest)."""

    key: str
    noun: str  # plural noun of the intro: "books"
    intro: str  # with {n} and {items}
    pool: tuple[str, ...]
    article: bool  # the intro lists "a white book" (True) or "Amy" / "apples" (False)
    definite: bool  # sentences say "The white book" (True) or "Amy" (False)
    plural: bool  # "The apples are ..."
    start: str  # "The order from START to END is: ..."
    end: str
    before: str  # relation "A <before> B": A nearer the start
    after: str


# Books and birds stand in a row, left to right, and are worded alike.
_IN_A_ROW = {
    "article": True, "definite": True, "plural": False,
    "start": "left", "end": "right", "before": "is to the left of", "after": "is to the right of",
}  # fmt: skip
SCENES: dict[str, Scene] = {
    s.key: s
    for s in (
        Scene(
            "books", "books", "On a shelf, there are {n} books: {items}.",
            tuple(f"{c} book" for c in ("white", "green", "orange", "red", "blue", "black", "brown", "yellow", "gray", "purple")),
            **_IN_A_ROW,
        ),
        Scene(
            "birds", "birds", "On a branch, there are {n} birds: {items}.",
            ("blue jay", "quail", "falcon", "owl", "raven", "robin", "crow", "hawk", "cardinal", "hummingbird"),
            **_IN_A_ROW,
        ),
        Scene(
            "vehicles", "vehicles", "In an antique car show, there are {n} vehicles: {items}.",
            ("motorcycle", "bus", "tractor", "station wagon", "convertible", "minivan", "truck", "limousine", "sedan", "hatchback"),
            True, True, False, "oldest", "newest", "is older than", "is newer than",
        ),
        Scene(
            "golfers", "golfers", "In a golf tournament, there were {n} golfers: {items}.",
            ("Amy", "Eli", "Eve", "Rob", "Ana", "Dan", "Mya", "Joe", "Mel", "Ada"),
            False, False, False, "first", "last", "finished above", "finished below",
        ),
        Scene(
            "fruits", "fruits", "A fruit stand sells {n} fruits: {items}.",
            ("apples", "mangoes", "oranges", "peaches", "watermelons", "loquats", "kiwis", "pears", "plums", "cantaloupes"),
            False, True, True, "cheapest", "most expensive", "are less expensive than", "are more expensive than",
        ),
    )
}
NOUN_SCENE = {s.noun: s.key for s in SCENES.values()}


def subject_of(scene: Scene, name: str, cap: bool = False) -> str:
    if not scene.definite:
        return name
    return f"{'The' if cap else 'the'} {name}"


def lower_the(sentence: str) -> str:
    """Lower-case a leading "The" (not a golfer's name)."""
    return "the " + sentence[4:] if sentence.startswith("The ") else sentence


def _be(scene: Scene) -> str:
    return "are" if scene.plural else "is"


# BIG-bench's words for positions: scene -> (position 1, position n, the k-th
# counted from the end, the k-th counted from the start).
_POSITION_WORDS = {
    "books": ("the leftmost", "the rightmost", "the {ord} from the right", "the {ord} from the left"),
    "birds": ("the leftmost", "the rightmost", "the {ord} from the right", "the {ord} from the left"),
    "vehicles": ("the oldest", "the newest", "the {ord}-newest", "the {ord}-oldest"),
    "golfers": ("first", "last", "{ord}-to-last", "{ord}"),
    "fruits": ("the cheapest", "the most expensive", "the {ord}-most expensive", "the {ord}-cheapest"),
}


def pos_phrase(scene: Scene, k: int, n: int, from_end: bool) -> str:
    """BIG-bench's wording of position k (of n), counted from either end."""
    first, last, from_the_end, from_the_start = _POSITION_WORDS[scene.key]
    if k == 1:
        return first
    if k == n:
        return last
    return from_the_end.format(ord=ORD[n + 1 - k]) if from_end else from_the_start.format(ord=ORD[k])


def canon_phrase(scene: Scene, k: int) -> str:
    """The rationale's wording of position k: always counted from the start,
    so that it reads straight off the order line."""
    if scene.key in ("books", "birds"):
        return f"{ORD[k]} from the left"
    if scene.key == "vehicles":
        return "the oldest" if k == 1 else f"the {ORD[k]}-oldest"
    if scene.key == "golfers":
        return ORD[k]
    return "the cheapest" if k == 1 else f"the {ORD[k]}-cheapest"


def _verb(scene: Scene) -> str:
    return "finished" if scene.key == "golfers" else _be(scene)


def at_sentence(scene: Scene, name: str, phrase: str, cap: bool) -> str:
    return f"{subject_of(scene, name, cap)} {_verb(scene)} {phrase}"


def rel_sentence(scene: Scene, a: str, b: str, forward: bool, cap: bool) -> str:
    """`a` is nearer the start than `b`, said as "a before b" or "b after a"."""
    if forward:
        return f"{subject_of(scene, a, cap)} {scene.before} {subject_of(scene, b)}"
    return f"{subject_of(scene, b, cap)} {scene.after} {subject_of(scene, a)}"


def join_and(parts: list[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def with_article(name: str) -> str:
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"
