"""Option resolution by meaning: which one option, if any, an answer names.

The rule (README, "How an answer is read"):

- Text is read after Unicode NFKC normalisation (full-width ``Ａｇｒｅｅ`` is ``Agree``), with zero-width characters
  and the BOM removed, non-breaking spaces made spaces and apostrophe-like characters (:data:`APOSTROPHES`, and a
  backtick inside ``don`t``) made ``'``; case, markdown, quotes and punctuation do not matter; struck-through text
  (``~~Agree~~``) is ignored.
- An option is named when its words occur as one run of words, in any order (``Strongly agree`` = ``Agree
  strongly``); an option whose run lies inside a longer option's run is part of that option, not named itself
  (``Neither agree nor disagree`` names neither ``Agree`` nor ``Disagree``).
- A negation cue (:data:`NEGATIONS`: ``not``, ``no``, ``never``, ..., the contractions written without an
  apostrophe, ``dont``, ``isnt``, ..., or with a space or quote for it, ``don t``; ``n't`` read as ``not``;
  affirming idioms such as ``no doubt`` are no cue) before an option's run in the same clause, and not
  part of that run, means the option is not chosen (``I don't agree``); options whose own words hold a negation
  (``Not very important``) still resolve. Clauses end at ``. , ; : ! ?`` and at ``but``, ``however``, ...
- A cue with no target, i.e. neither inside an option's run nor before one in its clause, makes the answer
  unreadable (None): ``Agree? No.``, ``Agree - not!``, ``Agree, or rather not``, ``Absolutely not: agree`` may take
  the option back, so they get no credit rather than a guess. A cue that has a target keeps its meaning:
  ``Agree (not Disagree)`` is Agree. A cue whose only target is intensity words outside every run
  (:data:`INTENSIFIERS`: ``Agree, but not strongly``) qualifies the answer, unless the option holds an intensity word
  or a cue (``Agree strongly, not very`` is None).
- Exactly one option named: its index; none or several: None. Option numbers and letters (``B``, ``(2)``,
  ``option 4``) are read when they are the whole answer, except on a Low/Medium/High scale where ``7`` is a point.

Every function accepts any string and runs in time linear in its length (no backtracking regex over the answer);
none raises on model output.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# An <answer> block longer than this is not an answer but an essay; it resolves to no option.
MAX_ANSWER_CHARS = 512
#: A later block up to this long is read for a negation cue (linear); a longer one withdraws the earlier answers.
MAX_TAKE_BACK_CHARS = 1024
#: An answer with more runs of option words than this is a list, not an answer: it resolves to no option.
MAX_RUNS = 8

#: Negative contractions written without an apostrophe (``I dont agree``): read as ``do not``, like ``don't``.
CONTRACTED_NEGATIONS = frozenset({"dont", "doesnt", "didnt", "cant", "cannot", "couldnt", "wont", "wouldnt",
                                  "shouldnt", "isnt", "arent", "wasnt", "werent", "havent", "hasnt", "hadnt", "aint",
                                  "mustnt", "neednt", "shant", "dnt"})
#: Stems of negative contractions whose apostrophe was written as a space or a quote (``don t``, ``don"t``,
#: ``don''t``): followed by the word ``t``, read like ``dont``.
SPLIT_CONTRACTIONS = frozenset({"don", "doesn", "didn", "isn", "aren", "wasn", "weren", "haven", "hasn", "hadn",
                                "won", "wouldn", "couldn", "shouldn", "can", "mustn", "needn", "ain", "shan"})
#: Words that negate an option that follows them in the same clause (``n't`` is read as ``not``).
NEGATIONS = frozenset({"not", "no", "nope", "never", "neither", "nor", "hardly", "barely", "scarcely", "rarely",
                       "seldom", "without", "nah"}) | CONTRACTED_NEGATIONS
#: Phrases holding a cue that affirm rather than negate (``Agree, no doubt``): their words are dropped.
AFFIRMING_IDIOMS = (("no", "doubt"), ("without", "a", "doubt"), ("without", "doubt"), ("no", "question"),
                    ("without", "question"), ("without", "a", "question"), ("no", "kidding"))
#: Intensity words: a cue whose only target is these (``Agree, but not strongly``) qualifies, it does not negate,
#: when they are not part of an option's run. ``really``, ``much`` and ``quite`` are left out on purpose:
#: ``Agree? Not really.`` / ``Not much.`` / ``Not quite.`` take the answer back.
INTENSIFIERS = frozenset({"strongly", "very", "completely", "entirely", "fully", "totally"})
#: Characters read as an apostrophe (``don´t`` is ``don't``): quotation marks, primes, modifier letters, accents
#: models put in contractions. Replaced before NFKC, which would turn the acute accents into a space and a mark.
APOSTROPHES = ("\u00b4\u02b9\u02bb\u02bc\u02bd\u0384\u055a\u05f3\u1fbd\u1fbf\u1ffd\u1ffe"
               "\u2018\u2019\u201b\u2032\u2035\uff07\u02ca\ua78c\u02be\uff70")
#: Words that end a clause for the negation scope, beside the punctuation in :data:`_CLAUSE_PUNCT`.
CLAUSE_BREAKS = frozenset({"but", "however", "though", "although", "whereas", "instead", "yet"})
_CLAUSE_PUNCT = frozenset(".,;:!?()[]")

# Characters stripped from both ends of an answer: white space, quotes, markdown emphasis, brackets, punctuation.
STRIP_CHARS = " \t\r\n\"'`*_#~>[](){}“”‘’«».,;:!?。，：；！？"
_SPACES = re.compile(r"\s+")
# "Answer: Agree", "Final answer - Agree", "My answer is Agree", "Option: Agree"
_PREFIX = re.compile(r"^(?:(?:my|the)\s+)?(?:final\s+)?(?:answer|option|choice)\s*(?:is\s*)?[:\-–]?\s*")
# "B", "(b)", "2", "option 2" alone
_LABEL_ONLY = re.compile(r"^(?:option\s*)?\(?([a-z]|\d{1,2})\)?$")
# "B) Agree", "2. Agree", "(2) Agree", "option 2: Agree"
_LABEL_PREFIX = re.compile(r"^(?:option\s*)?\(?([a-z]|\d{1,2})[).:]\s*(\S.*)$")
# Struck-through text (``~~Agree~~``): what the model crossed out is not its answer.
# Every crossed-out span of a later block (markdown and HTML forms), its marks removed before reading its words.
_STRUCK_ANY = re.compile(r"~~[^~]*~~|<(s|del|strike)>[^<]*</\1>")
_STRUCK_MARK = re.compile(r"~~|</?(?:s|del|strike)>")
# Markdown/HTML noise inside the answer.
_MARKUP = re.compile(r"[*_`]+|</?[a-z]+>")
# Words (letters and digits) and clause punctuation; each alternative consumes what the other cannot: linear.
_TOKEN = re.compile(r"[^\W_]+|[.,;:!?()\[\]]")
# Removed outright: zero-width space/non-joiner/joiner, word joiner, BOM, soft hyphen.
_INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")


def normalize_text(text: str) -> str:
    """NFKC, invisible characters (zero-width, BOM, soft hyphen) removed, non-breaking spaces as spaces,
    apostrophe-like characters (:data:`APOSTROPHES`) as ``'``.

    ASCII text is returned as is (nothing in it changes): the reward's hot path pays one ``isascii`` scan.

    >>> normalize_text("\\uff21\\uff47\\uff52\\uff45\\uff45\\u200b\\u00a0!"), normalize_text("don\\u00b4t")
    ('Agree !', "don't")
    """
    if text.isascii():
        return text
    # Before NFKC, which would make an acute accent a space and a mark. One fast scan per character (str.translate
    # pays a dict look-up per character of the text).
    for ch in APOSTROPHES:
        if ch in text:
            text = text.replace(ch, "'")
    text = unicodedata.normalize("NFKC", text)  # also maps U+00A0, U+202F, U+3000 to a plain space
    for ch in _INVISIBLE:
        if ch in text:
            text = text.replace(ch, "")
    return text


def normalize(answer: str) -> str:
    """Lower-case, NFKC, markup-free, single-spaced, without surrounding quotes, trailing punctuation or an
    ``Answer:`` prefix."""
    s = normalize_text(answer).lower()
    if "`" in s and "n`t" in s:  # "don`t": an apostrophe, not a markdown code span
        s = s.replace("n`t", "n't")
    if "~~" in s or "<s>" in s or "<del>" in s or "<strike>" in s:
        s = _STRUCK_ANY.sub(" ", s)
    if "*" in s or "_" in s or "`" in s or "<" in s:
        s = _MARKUP.sub(" ", s)
    s = " ".join(s.split()).strip(STRIP_CHARS)
    if s.startswith(("answer", "option", "choice", "final", "my ", "the ")):
        s = _PREFIX.sub("", s, count=1).strip(STRIP_CHARS)
    return s


def words_and_clauses(s: str) -> tuple[list[str], list[int]]:
    """Lower-case words of ``s`` (``n't`` as ``not``; ``dont`` as ``do not``, like ``don't``) and the clause number
    of each word."""
    if "n't" in s or "n’t" in s:
        s = s.replace("n't", " not").replace("n’t", " not")
    words: list[str] = []
    clauses: list[int] = []
    clause = 0
    for tok in _TOKEN.findall(s):
        if tok in _CLAUSE_PUNCT or tok in CLAUSE_BREAKS:
            clause += 1
            continue
        if tok == "t" and words and words[-1] in SPLIT_CONTRACTIONS and clauses[-1] == clause:  # "don t"
            tok = words.pop() + "t"
            clauses.pop()
        if tok in CONTRACTED_NEGATIONS:  # "dont trust at all" is the option "Do not trust at all"
            words += ("do", "not") if tok == "dnt" else (tok[:-3], "not") if tok == "cannot" else (tok[:-2], "not")
            clauses += (clause, clause)
        else:
            words.append(tok)
            clauses.append(clause)
    if ("no" in words or "without" in words) and ("doubt" in words or "question" in words or "kidding" in words):
        _drop_idioms(words, clauses)
    return words, clauses


def _drop_idioms(words: list[str], clauses: list[int]) -> None:
    """Remove :data:`AFFIRMING_IDIOMS` (within one clause) from ``words`` and ``clauses``, in place."""
    k = 0
    while k < len(words):
        for idiom in AFFIRMING_IDIOMS:
            end = k + len(idiom)
            if tuple(words[k:end]) == idiom and clauses[k] == clauses[end - 1]:
                del words[k:end], clauses[k:end]
                break
        else:
            k += 1


_MISS = object()
_CACHED_CHARS = 64
_CACHE_SIZE = 4096


def _negated(words: list[str], clauses: list[int], own: set[int]) -> list[bool]:
    """Per word: whether a negation cue (not at a position in ``own``) precedes it in its clause (one pass)."""
    out = []
    seen, clause = False, -1
    for k, (w, c) in enumerate(zip(words, clauses)):
        if c != clause:
            seen, clause = False, c
        out.append(seen)
        if w in NEGATIONS and k not in own:
            seen = True
    return out


def _dangling(words: list[str], clauses: list[int], own: set[int], starts: set[int],
              covered: set[int]) -> tuple[bool, list[int]]:
    """(whether some negation cue, not at a position in ``own``, has no option run starting after it in its clause:
    ``Agree? No.``, ``Agree - not!``; whether some cue only qualifies, i.e. is followed in its clause by nothing but
    :data:`INTENSIFIERS` outside every run (``covered``): ``Agree, but not strongly``, their positions). One
    backward pass."""
    later, clause, intense = False, -1, False
    qualified: list[int] = []
    for k in range(len(words) - 1, -1, -1):
        if clauses[k] != clause:
            later, clause, intense = False, clauses[k], None
        if k in starts:
            later = True
        elif not later and words[k] in NEGATIONS and k not in own:
            if not intense:
                return True, qualified
            qualified.append(k)
        if intense is not False:  # None: nothing after k yet in this clause
            intense = words[k] in INTENSIFIERS and k not in covered
    return False, qualified


class OptionSet:
    """Precomputed matcher for one question's options (cached per options tuple by :func:`option_set`).

    >>> s = option_set(("Agree strongly", "Agree", "Neither agree nor disagree", "Disagree", "Disagree strongly"))
    >>> s.resolve("I strongly agree"), s.resolve("I don't agree"), s.resolve("Neither agree nor disagree.")
    (0, None, 2)
    """

    __slots__ = ("options", "normalized", "exact", "fast", "labels_ok", "by_words", "lengths", "vocab", "cache",
                 "plain")

    def __init__(self, options: tuple[str, ...]):
        self.options = options
        self.normalized = tuple(_SPACES.sub(" ", normalize_text(o).lower()).strip(STRIP_CHARS) for o in options)
        self.exact = {n: i for i, n in enumerate(self.normalized)}
        # The hot path: the answer written exactly as the option (or its lower case), before any normalisation.
        self.fast: dict[str, int] = {}
        for i, o in enumerate(options):
            self.fast.setdefault(o, i)
            self.fast.setdefault(o.lower(), i)
        # Words as a sorted tuple -> option index: a run of words names an option when its sorted words are a key.
        self.by_words: dict[tuple[str, ...], int] = {}
        for i, n in enumerate(self.normalized):
            w = tuple(sorted(words_and_clauses(n)[0]))
            if w:
                self.by_words.setdefault(w, i)
        self.lengths = sorted({len(k) for k in self.by_words})
        # Options without intensity or negation words: the only ones a qualifying cue ("not strongly") leaves.
        self.plain = tuple(INTENSIFIERS.isdisjoint(w) and NEGATIONS.isdisjoint(w)
                           for w in (words_and_clauses(n)[0] for n in self.normalized))
        self.vocab = frozenset(w for k in self.by_words for w in k)
        # Numbers on a binned 1-10 scale ("7") are scale points, not option numbers: ambiguous, so not accepted.
        self.labels_ok = not any(n in ("low", "medium", "high") for n in self.normalized)
        # Short answers seen before -> their resolution: rollouts repeat a few spellings of each option.
        self.cache: dict[str, int | None] = {}

    def resolve(self, answer: str | None) -> int | None:
        """Index of the one option the answer names, or None (no answer, no option, several, or negated)."""
        if answer is None or not self.options:
            return None
        if len(answer) > MAX_ANSWER_CHARS:
            answer = answer.strip()  # white space around a short answer does not make it an essay
            if len(answer) > MAX_ANSWER_CHARS:
                return None
        hit = self.fast.get(answer)
        if hit is not None:
            return hit
        if len(answer) <= _CACHED_CHARS:
            hit = self.cache.get(answer, _MISS)
            if hit is _MISS:
                if len(self.cache) >= _CACHE_SIZE:
                    self.cache.clear()
                hit = self.cache[answer] = self._resolve(answer)
            return hit
        return self._resolve(answer)

    def _resolve(self, answer: str) -> int | None:
        hit = self.fast.get(answer.strip())
        if hit is not None:
            return hit
        s = normalize(answer)
        if not s:
            return None
        hit = self.exact.get(s)
        if hit is not None:
            return hit
        labelled, label = self._label(s)
        if labelled:
            return label
        return self._by_meaning(s)

    def _by_meaning(self, s: str) -> int | None:
        words, clauses = words_and_clauses(s)
        matches = self._runs(words)
        if not matches:
            return None
        if not NEGATIONS.isdisjoint(words):
            # A cue before a run, in its clause, and not inside it: that option is not chosen. A cue inside some
            # option's run is that option's own word ("Not very important"), not a cue for the runs after it.
            # A run that shares words with another run without holding it or lying inside it reads them twice
            # ("Not very important - not" holds "very important - not"): its cues are not its own (<= 8 runs).
            solid = [(start, end) for start, end, _ in matches
                     if not any(s2 < start < e2 < end or start < s2 < end < e2 for s2, e2, _ in matches)]
            own = {k for start, end in solid for k in range(start, end) if words[k] in NEGATIONS}
            # A cue with no target may take back the option before it ("Agree? No."): no credit, not a guess.
            # One whose only target is an intensity word qualifies the answer ("Agree, not strongly").
            covered = {k for start, end in solid for k in range(start, end)}
            dangling, qualified = _dangling(words, clauses, own, {m[0] for m in matches}, covered)
            if dangling:
                return None
            negated = _negated(words, clauses, own)
            # A run holding a qualifying cue reads words across clauses ("important, not very"): not an answer.
            matches = [m for m in matches if not negated[m[0]] and not any(m[0] <= q < m[1] for q in qualified)]
            if qualified:
                index = self._named(matches)
                # "Agree strongly, not very": the qualifier contradicts an option holding intensity or negation.
                return None if index is None or not self.plain[index] else index
        return self._named(matches)

    def _named(self, matches: list[tuple[int, int, int]]) -> int | None:
        """The one option the runs name (a run inside a longer option's run is part of it), or None."""
        named = {m[2] for m in matches}
        if len(named) <= 1:
            return named.pop() if named else None
        # A run inside a longer option's run is part of that option: look for one among the runs that start at
        # most one option length earlier (a bounded look-back, so this stays linear in the number of runs).
        by_start: dict[int, list[int]] = {}
        for start, end, _ in matches:
            by_start.setdefault(start, []).append(end)
        longest = self.lengths[-1]
        named = set()
        for start, end, index in matches:
            if not any(end <= e2 and e2 - s2 > end - start
                       for s2 in range(max(0, start - longest + 1), start + 1) for e2 in by_start.get(s2, ())):
                named.add(index)
        return named.pop() if len(named) == 1 else None

    def _runs(self, words: list[str]) -> list[tuple[int, int, int]]:
        """(start, end, option) for every run of words that names an option, in any order; none when there are
        more than :data:`MAX_RUNS`."""
        vocab, by_words, n = self.vocab, self.by_words, len(words)
        inside = [w in vocab for w in words]
        out = []
        for i in range(n):
            if not inside[i]:
                continue
            for m in self.lengths:
                if i + m > n or not all(inside[i:i + m]):
                    break
                index = by_words.get(tuple(sorted(words[i:i + m])))
                if index is not None:
                    out.append((i, i + m, index))
                    if len(out) > MAX_RUNS:
                        return []
        return out

    def _label(self, s: str) -> tuple[bool, int | None]:
        """(whether the answer is an option label, its index). "3. Agree" where 3 is not Agree names nothing."""
        m = _LABEL_ONLY.match(s)
        if m:
            i = self._label_index(m.group(1))
            return i is not None, i
        m = _LABEL_PREFIX.match(s)
        if m:
            by_text = self.exact.get(m.group(2).strip(STRIP_CHARS))
            if by_text is not None:
                by_label = self._label_index(m.group(1))
                return True, by_text if by_label in (None, by_text) else None
        return False, None

    def _label_index(self, label: str) -> int | None:
        if not self.labels_ok:
            return None
        if label.isdigit():
            i = int(label) - 1
        elif len(label) == 1 and "a" <= label <= "z":
            i = ord(label) - ord("a")
        else:
            return None
        return i if 0 <= i < len(self.options) else None


def holds_negation(answer: str | None) -> bool:
    """Whether an answer (at most :data:`MAX_ANSWER_CHARS` characters) holds a negation cue, read as
    :meth:`OptionSet.resolve` reads it (idioms such as ``no doubt`` are no cue; struck-through text is ignored).

    >>> holds_negation("I don t agree"), holds_negation("Agree, no doubt"), holds_negation("<answer> tags")
    (True, False, False)
    """
    if not answer:
        return False
    if len(answer) > MAX_TAKE_BACK_CHARS:  # an essay in a later block, not an answer: it reads as withdrawn
        return True
    return not NEGATIONS.isdisjoint(words_and_clauses(normalize(answer))[0])


def takes_back(answer: str | None) -> bool:
    """Whether a later answer block that names no option withdraws the earlier ones: it holds a negation cue
    (:func:`holds_negation`, at any length), or crossed-out text (``~~Agree~~``, ``<s>``/``<del>``/``<strike>``,
    combining strokes), which is the model striking its answer. Linear in the block's length.

    >>> takes_back("~~Agree~~"), takes_back("No, " + "really " * 200), takes_back("(the tags hold my answer)")
    (True, True, False)
    """
    if not answer or answer.isspace():
        return False
    low = answer.lower()
    if "\u0336" in low or "\u0335" in low:
        return True
    struck = [m.group(0) for m in _STRUCK_ANY.finditer(low)] if "~~" in low or "<s" in low or "<del" in low else []
    # Crossing out an answer withdraws it; crossing out only a negation ("~~not~~") withdraws the negation.
    if any(not set(words_and_clauses(normalize(_STRUCK_MARK.sub(" ", t)))[0]) <= NEGATIONS for t in struck):
        return True
    return holds_negation(answer)


@lru_cache(maxsize=4096)
def option_set(options: tuple[str, ...]) -> OptionSet:
    """The cached :class:`OptionSet` of an options tuple (a training set has a handful of distinct ones)."""
    return OptionSet(options)


__all__ = ["AFFIRMING_IDIOMS", "APOSTROPHES", "CLAUSE_BREAKS", "CONTRACTED_NEGATIONS", "INTENSIFIERS",
           "MAX_ANSWER_CHARS", "MAX_RUNS", "NEGATIONS", "SPLIT_CONTRACTIONS", "OptionSet", "holds_negation", "takes_back", "MAX_TAKE_BACK_CHARS",
           "normalize", "normalize_text", "option_set", "words_and_clauses"]
