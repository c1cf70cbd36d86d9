"""Country names from ISO 3166 codes, and the cross-country design (which countries train, which are unseen).

Names: the paper's 18 countries keep the release's UN-style strings (:data:`schema.COUNTRIES`); every other ISO 3166-1
country gets pycountry's common name where ISO's short name is a "Korea, Republic of" style (``South Korea``),
else the ISO short name (``Kenya``, ``Argentina``). A numeric code that is not ISO (WVS/EVS use a few, e.g. 909
Northern Ireland) takes the data file's own value label when it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from dvmap_verl.data import schema
from dvmap_verl.errors import InputError

ALL_OTHERS = "all-others"


@lru_cache(maxsize=1)
def _iso() -> tuple[dict[int, str], dict[str, str], dict[str, str]]:
    """(numeric -> name, alpha-3 -> name, alpha-2 -> alpha-3) over every ISO 3166-1 country."""
    import pycountry

    by_num, by_a3, a2 = {}, {}, {}
    for c in pycountry.countries:
        name = getattr(c, "common_name", None) or c.name
        by_num[int(c.numeric)] = name
        by_a3[c.alpha_3] = name
        a2[c.alpha_2] = c.alpha_3
    for c in schema.COUNTRIES:  # the release's strings win
        by_num[c.iso_num] = c.name
        by_a3[c.iso3] = c.name
    return by_num, by_a3, a2


def name_for_numeric(code: int) -> str | None:
    return _iso()[0].get(int(code))


def name_for_alpha(code: str) -> str | None:
    """Name of an ISO alpha-3 or alpha-2 code (case-insensitive)."""
    code = code.strip().upper()
    _, by_a3, a2 = _iso()
    return by_a3.get(a2.get(code, code)) if len(code) in (2, 3) else None


@dataclass(frozen=True)
class CountryDesign:
    """Countries by role: ``train`` (training, validation, cross-demographic, cross-value) and ``unseen``
    (cross-country). Names as in the corpus."""

    train: tuple[str, ...]
    unseen: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.train + self.unseen


PAPER_DESIGN = CountryDesign(schema.TRAIN_COUNTRIES, schema.CROSS_COUNTRIES)


def parse_countries(text: str | None, flag: str) -> tuple[str, ...] | str | None:
    """``--train-countries``/``--unseen-countries``: a comma list of ISO alpha-3 codes -> names, ``all-others``
    as itself, ``none`` as no country, None as None. Raises :class:`InputError` naming an unknown code."""
    if text is None:
        return None
    if text.strip().lower() == ALL_OTHERS:
        return ALL_OTHERS
    if text.strip().lower() == "none":  # e.g. --unseen-countries none: no cross-country split
        return ()
    if ALL_OTHERS in [t.strip().lower() for t in text.split(",")]:
        raise InputError(f"{flag}: {ALL_OTHERS} stands alone (every country of the file not in the other role); it "
                         f"cannot be mixed with codes: {text!r}")
    names, bad = [], []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        name = name_for_alpha(token) if len(token) == 3 else None
        (names if name else bad).append(name or token)
    if bad or not names:
        what = "is not an ISO 3166 alpha-3 country code" if len(bad) == 1 else "are not ISO 3166 alpha-3 country codes"
        raise InputError(f"{flag}: {', '.join(bad) or repr(text)} {what} (e.g. USA,DEU,KEN), nor {ALL_OTHERS} or none")
    return tuple(dict.fromkeys(names))


def resolve_design(train, unseen, present: list[str]) -> CountryDesign:
    """The design from parsed ``--train-countries``/``--unseen-countries`` (see :func:`parse_countries`);
    ``all-others`` is every country of ``present`` (the file's, in its order) not in the other role. Defaults: the
    paper's. Raises :class:`InputError` when both are ``all-others`` or a country is in both."""
    if train == ALL_OTHERS and unseen == ALL_OTHERS:
        raise InputError("--train-countries and --unseen-countries cannot both be all-others")
    given = {flag: names for flag, names in (("--train-countries", train), ("--unseen-countries", unseen))
             if isinstance(names, tuple)}  # the user's lists (the paper's defaults may be partly absent)
    train = PAPER_DESIGN.train if train is None else train
    unseen = PAPER_DESIGN.unseen if unseen is None else unseen
    if train == ALL_OTHERS:
        train = tuple(c for c in present if c not in set(unseen))
    if unseen == ALL_OTHERS:
        unseen = tuple(c for c in present if c not in set(train))
    if not train:
        raise InputError("--train-countries: no training country (the design needs at least one)")
    both = sorted(set(train) & set(unseen))
    if both:
        raise InputError(f"{', '.join(both)} cannot be both a training and an unseen country (--train-countries, "
                         f"--unseen-countries)")
    _check_present(given, present)
    return CountryDesign(tuple(train), tuple(unseen))


def _check_present(given: dict[str, tuple[str, ...]], present: list[str]) -> None:
    """:class:`InputError` naming the codes of a user's country list that the file does not hold."""
    if not present:  # nothing read to compare with (unit use)
        return
    code = {name: a3 for a3, name in _iso()[1].items()}
    for flag, names in given.items():
        absent = [n for n in names if n not in set(present)]
        if absent:
            listed = ", ".join(f"{code.get(n, n)} ({n})" for n in absent)
            held = ", ".join(code.get(n, n) for n in present)
            raise InputError(f"{flag}: {listed} not in the file; its countries: {held}")
