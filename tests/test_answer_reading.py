"""How an answer is read (README, "How an answer is read"): one reading for every reward variant, the evaluation
and the verbalised readout. The phrasing table covers the option set of every one of the 16 paper questions;
properties check what no table can enumerate."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvmap_verl.reward import DEFAULT_BETA, compute_score, score
from dvmap_verl.reward.answers import (extract_answer, extract_answer_release, format_share, read_answer,
                                       release_correct, resolve_answer, resolve_completion)
from dvmap_verl.reward.options import normalize_text, option_set

# The option sets of the 16 paper questions, as the release's `Options` column holds them (public WVS-7
# questionnaire wording). Written out so that the table runs without the release; checked against it below.
IMP = "Very important, Rather important, Not very important, Not at all important"
LMH = "Low, Medium, High"
SEC = "Very secure, Quite secure, Not very secure, Not at all secure"
AG4 = "Strongly agree, Agree, Disagree, Strongly disagree"
AG5 = "Agree strongly, Agree, Neither agree nor disagree, Disagree, Disagree strongly"
HAP = "Very happy, Rather happy, Not very happy, Not at all happy"
TRU = "Trust completely, Trust somewhat, Do not trust very much, Do not trust at all"
CON = "A great deal, Quite a lot, Not very much, None at all"
QUESTION_OPTIONS = {
    "Q1": IMP, "Q2": IMP, "Q3": IMP, "Q4": IMP, "Q5": IMP, "Q6": IMP, "Q27": AG4, "Q29": AG4, "Q36": AG5,
    "Q46": HAP, "Q49": LMH, "Q50": LMH, "Q60": TRU, "Q69": CON, "Q112": LMH, "Q131": SEC,
}

# (answer as written inside the tags, options, the option it names or None)
PHRASINGS = [
    # Q1-Q6: importance
    ("Very important", IMP, "Very important"),
    ("very IMPORTANT.", IMP, "Very important"),
    ("Important, very.", IMP, "Very important"),  # words in any order
    ("Ｖｅｒｙ ｉｍｐｏｒｔａｎｔ", IMP, "Very important"),  # full-width
    ("Very\u00a0important\u200b", IMP, "Very important"),  # NBSP, zero-width space
    ("I wouldn't say very important", IMP, None),  # negated
    ("Hardly very important", IMP, None),
    ("It is never very important to her", IMP, None),
    ("Not very important", IMP, "Not very important"),  # a negation that is the option's own word
    ("**Not at all important**", IMP, "Not at all important"),
    ("Important? Not at all.", IMP, "Not at all important"),
    ("Rather important", IMP, "Rather important"),
    ("It is rather important to her", IMP, "Rather important"),
    ("I do not think it is very important, but rather important", IMP, "Rather important"),  # clause scope
    ("Very important or rather important", IMP, None),  # two options
    ("Not very important or very important", IMP, None),  # the first "not" is an option's own word: two options
    ("not not very important", IMP, None),  # a cue before an option that holds one
    ("important", IMP, None),  # no option is just "important"
    ("2", IMP, "Rather important"),  # an option number
    # Q49, Q50, Q112: low / medium / high
    ("Low", LMH, "Low"),
    ("medium", LMH, "Medium"),
    ("high!", LMH, "High"),
    ("Medium-high", LMH, None),
    ("Not high", LMH, None),
    ("It is low, not high", LMH, "Low"),  # the negation is in the other clause
    ("7", LMH, None),  # a point on the 1-10 scale, not an option number
    # Q131: security
    ("Quite secure", SEC, "Quite secure"),
    ("Secure, quite", SEC, "Quite secure"),
    ("not very secure", SEC, "Not very secure"),
    ("I don't feel very secure", SEC, None),  # "very secure" negated; "not very secure" is not said as such
    ("Not at all secure", SEC, "Not at all secure"),
    ("'Very secure'", SEC, "Very secure"),
    # Q27, Q29: four-point agreement
    ("Agree", AG4, "Agree"),
    ("I agree", AG4, "Agree"),
    ("I don't agree", AG4, None),
    ("Agree strongly", AG4, "Strongly agree"),  # reordered words of "Strongly agree"
    ("I strongly agree", AG4, "Strongly agree"),
    ("strongly DISAGREE", AG4, "Strongly disagree"),
    ("Disagree strongly.", AG4, "Strongly disagree"),
    ("I disagree", AG4, "Disagree"),
    ("I do not disagree", AG4, None),
    ("Agree or disagree", AG4, None),
    ("agreed", AG4, None),
    ("Neither agree nor disagree", AG4, None),  # not an option here; both words negated
    ("B", AG4, "Agree"),
    ("3. Agree", AG4, None),  # number and text disagree
    # Q36: five-point agreement
    ("Strongly agree", AG5, "Agree strongly"),  # the issue's example
    ("Agree strongly", AG5, "Agree strongly"),
    ("Agree, strongly.", AG5, "Agree strongly"),
    ("Neither agree nor disagree", AG5, "Neither agree nor disagree"),  # holds Agree and Disagree: the longer wins
    ("I neither agree nor disagree", AG5, "Neither agree nor disagree"),
    ("Strongly disagree", AG5, "Disagree strongly"),
    ("Disagree", AG5, "Disagree"),
    ("I don't agree strongly", AG5, None),
    ("Strongly agree or agree", AG5, None),
    # Q46: happiness
    ("Rather happy", HAP, "Rather happy"),
    ("Very happy", HAP, "Very happy"),
    ("Happy, very", HAP, "Very happy"),
    ("Not very happy", HAP, "Not very happy"),
    ("I'm not very happy", HAP, "Not very happy"),
    ("Not at all happy", HAP, "Not at all happy"),
    ("not rather happy", HAP, None),
    # Q60: trust
    ("Trust completely", TRU, "Trust completely"),
    ("Completely trust", TRU, "Trust completely"),
    ("Somewhat trust", TRU, "Trust somewhat"),
    ("Do not trust at all", TRU, "Do not trust at all"),
    ("Don't trust at all", TRU, "Do not trust at all"),
    ("Do not trust very much", TRU, "Do not trust very much"),
    ("I would not trust completely", TRU, None),
    ("I don't trust them completely", TRU, None),
    # Q69: confidence
    ("A great deal", CON, "A great deal"),
    ("Quite a lot", CON, "Quite a lot"),
    ("Not very much", CON, "Not very much"),
    ("None at all.", CON, "None at all"),
    ("Not a great deal", CON, None),
    ("A great deal, not quite a lot", CON, "A great deal"),
    # Issue 20's follow-up: contractions without an apostrophe or with another apostrophe character.
    ("I dont agree", AG5, None),
    ("I didnt agree", AG5, None),
    ("I cant agree", AG5, None),
    ("I wouldnt say very important", IMP, None),
    ("It isnt very important", IMP, "Not very important"),  # as "It isn't very important": not Very important
    ("I don`t agree", AG5, None),  # backtick
    ("I don\u00b4t agree", AG5, None),  # acute accent (NFKC alone would make it a space and a mark)
    ("I don\u02bct agree", AG5, None),  # modifier letter apostrophe
    ("I don\u2018t agree", AG5, None),
    ("I don\uff07t agree", AG5, None),  # full-width apostrophe
    ("I don\u00b4t agree; disagree", AG5, "Disagree"),  # the cue's scope is still its clause
    ("Dont trust at all", TRU, "Do not trust at all"),  # "dont" inside an option's run is its own word
    # A cue with no target (after the option, or in a clause without one): no credit rather than a guess.
    ("Agree? No.", AG5, None),
    ("Agree. No.", AG5, None),
    ("Agree? Nope.", AG5, None),
    ("Agree? No way.", AG5, None),
    ("Agree - NOT!", AG5, None),
    ("Agree... not.", AG5, None),
    ("Agree, or rather not", AG5, None),
    ("Trust completely? Never.", TRU, None),
    ("Absolutely not: agree", AG5, None),
    ("Rather important, not", IMP, None),
    ("Very important, not", IMP, "Not very important"),  # one run of its words, as "Important? Not at all."
    ("Not very important - not!", IMP, None),  # "very important - not" reuses the option's words: the cue dangles
    ("Agree (not Disagree)", AG5, "Agree"),  # the cue has a target: Disagree is not chosen
    ("Not very important? Yes.", IMP, "Not very important"),  # the option's own negation
    ("Do not trust at all.", TRU, "Do not trust at all"),
    ("Neither agree nor disagree!", AG5, "Neither agree nor disagree"),
    # Follow-up 2: more apostrophes, the apostrophe written as a space or a quote, more cues, struck-through text.
    ("I don\u02cat agree", AG5, None),  # modifier letter acute accent
    ("I don\ua78ct agree", AG5, None),  # Latin small letter saltillo
    ("I don\u02bet agree", AG5, None),  # modifier letter right half ring
    ("I don\uff70t agree", AG5, None),  # half-width prolonged sound mark
    ("I don''t agree", AG5, None),
    ('I don"t agree', AG5, None),
    ("I don t agree", AG5, None),
    ("It isn t very important", IMP, "Not very important"),  # as "It isn't very important"
    ("I can t agree", AG5, None),
    ("I won t say very important", IMP, None),
    ("Don t trust at all", TRU, "Do not trust at all"),  # the option's own words
    ("I can agree", AG5, "Agree"),  # "can" alone is no cue
    ("I shant agree", AG5, None),
    ("I dnt agree", AG5, None),
    ("Nah, agree", AG5, None),
    ("Agree? Nah.", AG5, None),
    ("~~Agree~~ Disagree", AG5, "Disagree"),  # crossed out by the model
    ("~~Agree~~", AG5, None),
    ("~~Disagree~~ **Agree**", AG5, "Agree"),
    # Affirming idioms hold a cue but do not negate.
    ("Agree, no doubt", AG5, "Agree"),
    ("Agree, without a doubt", AG5, "Agree"),
    ("I agree; there's no doubt", AG5, "Agree"),
    ("Very important - no question", IMP, "Very important"),
    ("Without question, disagree", AG5, "Disagree"),
    ("No doubt: agree strongly", AG5, "Agree strongly"),
    # A cue whose only target is an intensity word outside every option qualifies the answer.
    ("I agree, but not strongly", AG5, "Agree"),
    ("Agree (not strongly)", AG5, "Agree"),
    ("Agree, not very strongly", AG5, "Agree"),
    ("Rather important, not very", IMP, "Rather important"),
    ("Trust somewhat, not completely", TRU, "Trust somewhat"),
    # ... but never turns a negated option into a chosen one, nor leaves an option the qualifier contradicts.
    ("Not strongly agree", AG5, None),
    ("Strongly agree, but not completely", AG5, None),
    ("Agree strongly, not very", AG5, None),
    ("Trust completely, not fully", TRU, None),
    ("Agree? Not really.", AG5, None),  # "really", "much", "quite" are no intensity words here: taken back
    ("Agree? Not much.", AG5, None),
    ("Never justifiable, never", "Never justifiable, Sometimes justifiable, Always justifiable", None),
    ("No, not really", "Yes, No", None),  # kept on the safe side
    ("No, not strongly", "Yes, No", None),  # an option holding a cue is not qualified
]


def test_the_table_covers_every_question():
    assert len(PHRASINGS) >= 60
    assert {o for _, o, _ in PHRASINGS} - {"Never justifiable, Sometimes justifiable, Always justifiable",
                                           "Yes, No"} == set(QUESTION_OPTIONS.values())


def test_option_sets_are_the_releases(release_dev):
    by_question = release_dev.groupby("Q_id")["Options"].agg(set).to_dict()
    assert by_question == {q: {o} for q, o in QUESTION_OPTIONS.items()}


@pytest.mark.parametrize("answer, options, expected", PHRASINGS)
def test_phrasing_table(answer, options, expected):
    opts = options.split(", ")
    got = resolve_answer(answer, options)
    assert (None if got is None else opts[got]) == expected
    # The same through the whole reading and the reward: acc 1 exactly for the option the answer names.
    for truth in opts:
        out = compute_score("dvmap/wvs", f"<reasoning>r</reasoning><answer>{answer}</answer>", truth,
                            {"options": options})
        assert out["acc"] == (1.0 if truth == expected else 0.0), truth


# ----------------------------------------------------------------------------------------------- the reading rule

AGREE = ["Agree", "Disagree"]


@pytest.mark.parametrize("completion, expected", [
    ("<answer>Agree</answer>", "Agree"),
    ("<think>maybe <answer>Agree</answer></think>\nDisagree", None),  # a draft inside the thinking is not the answer
    ("<think>maybe <answer>Agree</answer></think><answer>Disagree</answer>", "Disagree"),
    ("<think>maybe <answer>Agree</answer> and on and on", None),  # unclosed thinking: cut at max tokens
    ("so <answer>Agree</answer>, I think.</think><answer>Disagree</answer>", "Disagree"),  # the prompt opened it
    ("<answer>Agree</answer> as the <answer></answer> tags ask", "Agree"),  # an empty block mentioned in prose
    ("<answer>Agree</answer> I put my answer in the <answer> tag", "Agree"),  # an open tag mentioned in prose
    ("<answer>Agree</answer> then <ANSWER>Disagree</ANSWER>", "Disagree"),  # tags in any case: the last one
    ("<Answer>Agree</Answer>", "Agree"),
    ("＜answer＞Ａｇｒｅｅ＜/answer＞", "Agree"),  # full-width tags and letters
    ("\ufeff<answer>Agr\u200bee</answer>", "Agree"),  # BOM, zero-width space
    ("<answer>Agree</answer><answer>Disagree</answer>", "Disagree"),  # two real answers: the last
    ("<answer>Agree</answer><answer>maybe</answer>", "Agree"),  # a later block naming nothing
    # A later block holding a negation cue is a real answer that takes the earlier ones back.
    ("<answer>Agree</answer><answer>I don't agree</answer>", None),
    ("<answer>Agree</answer><answer>No.</answer>", None),
    ("<answer>Agree</answer><answer>not</answer>", None),
    ("<answer>Agree</answer><answer>Nah</answer>", None),
    ("<answer>Agree</answer><answer>I don t know</answer>", None),
    ("<answer>Agree</answer><answer>Agree? No.</answer>", None),
    ("<answer>Agree</answer><answer>No doubt</answer>", "Agree"),  # an idiom, no cue: skipped
    ("<answer>Agree</answer><answer>~~not~~</answer>", "Agree"),  # crossed out: skipped
    ("<answer>Agree</answer><answer> </answer>", "Agree"),
    ("<answer>I don't agree</answer><answer>Agree</answer>", "Agree"),  # the last real answer
    ("<think><answer>No.</answer></think><answer>Agree</answer>", "Agree"),  # thinking removed first
    ("<answer>Agree", "Agree"),  # truncated final block
    ("<THINK>x</THINK><answer>Disagree</answer>", "Disagree"),
    ("no tags, Agree", None),
])
def test_reading_rule(completion, expected):
    got = resolve_completion(completion, AGREE)
    assert (None if got is None else AGREE[got]) == expected


def test_extract_answer_names_stay():
    assert extract_answer("<answer>Agree</answer> the <answer></answer> tags") == "Agree"
    assert extract_answer("<answer>Agree</answer> the <answer> tag", AGREE) == "Agree"
    assert extract_answer("<answer>Agree</answer> the <answer> tag") == " tag"  # without options: last non-blank
    assert extract_answer("<think><answer>Agree</answer></think>") is None
    assert read_answer("<answer>maybe</answer>", option_set(("Agree",)).resolve) == ("maybe", None)
    # Taken back by a negating block: no value; the text is still the last non-blank block.
    assert read_answer("<answer>Agree</answer><answer>not</answer><answer>hm</answer>",
                       option_set(("Agree",)).resolve) == ("hm", None)
    assert extract_answer("<answer>not so</answer> <answer>Agree</answer>") == "Agree"


def test_format_share_follows_the_preset():
    thinking = "<think>x <answer>Agree</answer></think>\nDisagree"
    # qwen3 credits the think tags; answer tags inside the thinking do not count: 2 of 4.
    assert format_share(thinking, ("<think>", "</think>", "<answer>", "</answer>")) == 0.5
    assert format_share(thinking, ("<reasoning>", "</reasoning>", "<answer>", "</answer>")) == 0.0
    assert format_share("<REASONING>r</REASONING><ANSWER>a</ANSWER>",
                        ("<reasoning>", "</reasoning>", "<answer>", "</answer>")) == 1.0


def test_the_issues_examples_through_the_reward():
    imp = {"options": IMP}
    assert compute_score("w", "<answer>I wouldn't say very important</answer>", "Very important", imp)["acc"] == 0.0
    assert compute_score("w", "<answer>I don't agree</answer>", "Agree", {"options": AG4})["acc"] == 0.0
    assert compute_score("w", "<answer>Strongly agree</answer>", "Agree strongly", {"options": AG5})["acc"] == 1.0
    assert compute_score("w", "<answer>Ａｇｒｅｅ</answer>", "Agree", {"options": AG4})["acc"] == 1.0
    # Thinking with a draft answer, the reply untagged: no answer; qwen3 format 2/4 -> score 0.4 * 0.5 = 0.2.
    out = compute_score("w", "<think>\n<answer>Agree</answer>\n</think>\nDisagree", "Agree", {"options": AG4},
                        format_tags="qwen3")
    assert out == {"score": pytest.approx(0.2), "acc": 0.0, "format": 0.5, "parsed": 0.0, "likert": 0.0}
    out = compute_score("w", "<reasoning>r</reasoning><answer>Agree</answer> (in <answer></answer> tags)", "Agree",
                        {"options": AG4})
    assert out["acc"] == 1.0 and out["score"] == pytest.approx(1 + DEFAULT_BETA)


def test_the_authors_rule_keeps_its_own_extractor():
    # Byte for byte their extract_answer_from_model_output: case-sensitive, last tag, needs the closing tag,
    # no normalisation, no thinking removed.
    assert extract_answer_release("<think><answer>Agree</answer></think> Disagree") == "Agree"
    assert extract_answer_release("<ANSWER>Agree</ANSWER>") is None
    assert extract_answer_release("<answer>Ａｇｒｅｅ</answer>") == "Ａｇｒｅｅ"
    assert release_correct("<answer>I would not say Very important</answer>", IMP, "Very important") is True
    assert resolve_completion("<answer>I would not say Very important</answer>", IMP) is None


def test_without_options_the_truth_is_read_by_the_same_rule():
    assert score("<think><answer>Agree</answer></think>", "Agree")["acc"] == 0.0
    assert score("<answer>Agree</answer> in <answer></answer>", "Agree")["acc"] == 1.0


def test_normalisation_keeps_ascii_as_is():
    text = "<answer>Agree</answer>"
    assert normalize_text(text) is text
    assert normalize_text("\uff21\u00a0\u202fb\ufeff") == "A  b"


@pytest.mark.parametrize("variant", ["binary", "rps"])
def test_a_64kb_pathological_answer_is_linear(variant):
    options = {"options": AG5}
    cases = [
        "<answer>" + "not agree strongly, " * 3300 + "</answer>",
        "<answer>" + "agree " * 11000 + "</answer>",
        "<answer>" + "Agree: 0.1, " * 5500 + "</answer>",
        "<think>" * 9200 + "<answer>Agree</answer>",
        "<think>x</think>" * 4100 + "<answer>Disagree</answer>",
        "<answer>x</answer>" * 3600,
        "<answer>" + ":" * 65000 + "</answer>",
    ]
    for text in cases:
        assert len(text) >= 64_000
        t0 = time.perf_counter()
        out = compute_score("w", text, "Agree", options, variant=variant)
        assert time.perf_counter() - t0 < 0.25, text[:40]
        assert out["acc"] == 0.0 and math.isfinite(out["score"])


# --------------------------------------------------------------------------------------------------- properties

_ALL_OPTIONS = sorted({o for opts in QUESTION_OPTIONS.values() for o in opts.split(", ")})


def _compat(ch: str, form: int) -> str:
    """A Unicode compatibility form of an ASCII character that NFKC maps back to it."""
    if form == 1 and "!" <= ch <= "~":
        return chr(ord(ch) + 0xFEE0)  # full-width
    if form == 2 and ch.isalpha():
        return chr((0x1D400 if ch.isupper() else 0x1D41A) + ord(ch.lower()) - ord("a"))  # mathematical bold
    if form == 3 and ch == " ":
        return "\u00a0"
    return ch


@st.composite
def naming(draw):
    """(completion, options, the index it names): one option, its words shuffled, case changed, some characters
    in a compatibility form, wrapped in markdown, quotes or punctuation."""
    options = draw(st.sampled_from(sorted(set(QUESTION_OPTIONS.values())))).split(", ")
    index = draw(st.integers(0, len(options) - 1))
    words = draw(st.permutations(options[index].split()))
    text = " ".join(w.upper() if draw(st.booleans()) else w.lower() for w in words)
    forms = draw(st.lists(st.integers(0, 3), min_size=len(text), max_size=len(text)))
    text = "".join(_compat(c, f) for c, f in zip(text, forms))
    left, right = draw(st.sampled_from([("", ""), ("**", "**"), ("_", "_"), ("`", "`"), ('"', '"'), ("'", "'"),
                                        ("“", "”"), ("«", "»"), ("", "."), ("", "!"), ("(", ")"),
                                        ("Answer: ", ""), ("I'd say ", "."), ("\n", "\n")]))
    return f"<reasoning>r</reasoning><answer>{left}{text}{right}</answer>", options, index


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(naming())
def test_naming_one_option_resolves_to_it(case):
    completion, options, index = case
    assert resolve_completion(completion, options) == index
    assert compute_score("w", completion, options[index], {"options": options})["acc"] == 1.0


_NEGATIONS = ["not {o}", "I don't say {o}", "I would never choose {o}", "definitely not {o}", "hardly {o}",
              "I wouldn't say it is {o}", "no, not {o}", "I do not think {o}", "Neither {o}", "it is not {o}",
              "I dont say {o}", "I wouldnt say {o}", "it isnt {o}", "I don\u00b4t say {o}", "I don`t say {o}",
              "{o}? No.", "{o} - not!", "{o}, or rather not", "{o}. Nope.", "{o}? Never.",
              "I don t say {o}", "I don''t say {o}", 'I don"t say {o}', "I don\u02cat say {o}", "Nah, {o}",
              "~~{o}~~", "not strongly {o}", "{o}? Not really.",
              # an earlier clean block of the truth, then a block that takes it back
              "{o}</answer><answer>I don't agree", "{o}</answer><answer>No.", "{o}</answer><answer>not",
              "{o}</answer><answer>not {o}", "{o}</answer><answer>Nah"]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=st.sampled_from(sorted(set(QUESTION_OPTIONS.values()))), data=st.data())
def test_negating_the_truth_never_scores(options, data):
    opts = options.split(", ")
    truth = data.draw(st.sampled_from(opts))
    said = data.draw(st.sampled_from(_NEGATIONS)).format(o=data.draw(st.sampled_from([truth, truth.lower(),
                                                                                      truth.upper()])))
    for variant in ("binary", "distance", "gaussian"):
        out = compute_score("w", f"<reasoning>r</reasoning><answer>{said}</answer>", truth, {"options": opts},
                            variant=variant)
        assert out["acc"] == 0.0, said


# Completions that negate the truth (the tester's cases): (completion, options, truth). None of them earns acc.
NEGATING_ROWS = [
    ("<answer>I dont agree</answer>", AG5, "Agree"),
    ("<answer>I didnt agree</answer>", AG5, "Agree"),
    ("<answer>I cant agree</answer>", AG5, "Agree"),
    ("<answer>I wouldnt say very important</answer>", IMP, "Very important"),
    ("<answer>It isnt very important</answer>", IMP, "Very important"),
    ("<answer>I don`t agree</answer>", AG5, "Agree"),
    ("<answer>I don\u00b4t agree</answer>", AG5, "Agree"),
    ("<answer>I don\u02bct agree</answer>", AG5, "Agree"),
    ("<answer>Agree? No.</answer>", AG5, "Agree"),
    ("<answer>Agree. No.</answer>", AG5, "Agree"),
    ("<answer>Agree? Nope.</answer>", AG5, "Agree"),
    ("<answer>Agree? No way.</answer>", AG5, "Agree"),
    ("<answer>Agree - NOT!</answer>", AG5, "Agree"),
    ("<answer>Agree... not.</answer>", AG5, "Agree"),
    ("<answer>Agree, or rather not</answer>", AG5, "Agree"),
    ("<answer>Trust completely? Never.</answer>", TRU, "Trust completely"),
    ("<answer>Absolutely not: agree</answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer>I don't agree</answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer>No.</answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer>not</answer>", AG5, "Agree"),
    ("<answer>I don''t agree</answer>", AG5, "Agree"),
    ('<answer>I don"t agree</answer>', AG5, "Agree"),
    ("<answer>I don t agree</answer>", AG5, "Agree"),
    ("<answer>I don\u02cat agree</answer>", AG5, "Agree"),
    ("<answer>I don\ua78ct agree</answer>", AG5, "Agree"),
    ("<answer>I don\u02bet agree</answer>", AG5, "Agree"),
    ("<answer>I don\uff70t agree</answer>", AG5, "Agree"),
    ("<answer>I shant agree</answer>", AG5, "Agree"),
    ("<answer>I dnt agree</answer>", AG5, "Agree"),
    ("<answer>Agree? Nah.</answer>", AG5, "Agree"),
    ("<answer>~~Agree~~</answer>", AG5, "Agree"),
    ("<answer>Not strongly agree</answer>", AG5, "Agree strongly"),
    # the third probe: a later crossed-out or long withdrawing block takes the earlier answer back
    ("<answer>Agree</answer><answer>~~Agree~~</answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer>~~Agree~~ (withdrawn)</answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer><s>Agree</s></answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer><del>Agree</del></answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer>A\u0336g\u0336r\u0336e\u0336e\u0336</answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer>" + "On reflection, weighing it all. " * 22 + "So no: I do not agree.</answer>",
     AG5, "Agree"),
    ("<answer>Agree</answer><answer>no" + " " * 1000 + "</answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer>No, " + "really " * 80 + "</answer>", AG5, "Agree"),
]


@pytest.mark.parametrize("completion, options, truth", NEGATING_ROWS)
def test_negating_rows_never_score(completion, options, truth):
    got = resolve_completion(completion, options)
    assert got is None or (completion, options.split(", ")[got]) == ("<answer>It isnt very important</answer>",
                                                                    "Not very important")
    for variant in ("binary", "distance", "gaussian"):
        assert score(completion, truth, options, variant=variant)["acc"] == 0.0, variant


def test_white_space_around_a_short_answer_is_not_an_essay():
    """The 512-character bound applies to the answer, not to the padding around it."""
    assert score("<answer>Agree" + " " * 1000 + "</answer>", "Agree", AG5)["acc"] == 1.0
    assert score("<answer>" + "Agree " * 120 + "</answer>", "Agree", AG5)["acc"] == 0.0  # 720 characters of words


# The README's table "How an answer is read", row by row.
README_ROWS = [
    ("<answer>Agree</answer><answer>~~Agree~~</answer>", AG5, None),
    ("<answer>\uff21\uff47\uff52\uff45\uff45</answer>".replace("<", "\uff1c").replace(">", "\uff1e"), AG5, "Agree"),
    ("<think><answer>Agree</answer></think> Disagree", AG5, None),
    ("<think>maybe <answer>Agree</answer>, but", AG5, None),
    ("so <answer>Agree</answer></think><answer>Disagree</answer>", AG5, "Disagree"),
    ("<answer>Agree</answer> <ANSWER>Disagree</ANSWER>", AG5, "Disagree"),
    ("<answer>Agree</answer> in the <answer></answer> tags", AG5, "Agree"),
    ("<answer>Agree", AG5, "Agree"),
    ("<answer>**Answer: agree.**</answer>", AG5, "Agree"),
    ("<answer>Strongly agree</answer>", AG5, "Agree strongly"),
    ("<answer>Neither agree nor disagree</answer>", AG5, "Neither agree nor disagree"),
    ("<answer>I don't agree</answer>", AG5, None),
    ("<answer>Agree? No.</answer>", AG5, None),
    ("<answer>Agree - not!</answer>", AG5, None),
    ("<answer>Absolutely not: agree</answer>", AG5, None),
    ("<answer>Agree (not Disagree)</answer>", AG5, "Agree"),
    ("<answer>Agree</answer><answer>I don't agree</answer>", AG5, None),
    ("<answer>~~Agree~~ Disagree</answer>", AG5, "Disagree"),
    ("<answer>Agree, no doubt</answer>", AG5, "Agree"),
    ("<answer>I agree, but not strongly</answer>", AG5, "Agree"),
    ("<answer>Not strongly agree</answer>", AG5, None),
    ("<answer>I dont agree</answer>", AG5, None),
    ("<answer>I don t agree</answer>", AG5, None),
    ("<answer>I don\u00b4t agree</answer>", AG5, None),
    ("<answer>I don't think it is very important, but rather important</answer>", IMP, "Rather important"),
    ("<answer>I'm not very happy</answer>", HAP, "Not very happy"),
    ("<answer>Agree or disagree</answer>", AG5, None),
    ("<answer>B</answer>", AG5, "Agree"),
    ("<answer>(2)</answer>", AG5, "Agree"),
    ("<answer>2. Agree</answer>", AG5, "Agree"),
    ("<answer>3. Agree</answer>", AG5, None),
    ("<answer>7</answer>", LMH, None),
]


@pytest.mark.parametrize("completion, options, expected", README_ROWS)
def test_readme_rows(completion, options, expected):
    got = resolve_completion(completion, options)
    assert (None if got is None else options.split(", ")[got]) == expected
