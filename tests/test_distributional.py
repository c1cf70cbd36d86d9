"""Distributional evaluation: targets from respondents, option-probability readouts, floors, calibration, pairs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from dvmap_verl.data import synth
from dvmap_verl.data.distributions import answer_distributions
from dvmap_verl.data.prepare import prepare_wvs
from dvmap_verl.data.schema import ATTRIBUTE_NAMES, TRAIN_QUESTIONS
from dvmap_verl.evaluation import distributional as D
from dvmap_verl.evaluation.backends import GenerationSettings, make_backend
from dvmap_verl.evaluation.evaluate import EvalConfig, read_predictions, run_eval
from dvmap_verl.evaluation.readouts import option_request, scoring_start
from dvmap_verl.evaluation.report import build_report
from fake_openai import FakeServer


def dist(*rows, width=D.MAX_K):
    out = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


# ------------------------------------------------------------------------------------------- metrics by hand


def test_metrics_and_floors_worked_by_hand():
    k = np.array([3])
    # All mass on the first option, truth the last: both CDF gaps are 1 -> RPS (1 + 1) / 2 = 1, WD 2 / 2 = 1.
    assert D.rps(dist([1, 0, 0]), dist([0, 0, 1]), k)[0] == pytest.approx(1.0)
    assert D.wd_norm(dist([1, 0, 0]), dist([0, 0, 1]), k)[0] == pytest.approx(1.0)
    # p = (.5, .5, 0) vs truth option 2: CDF gaps (.5, 0) -> RPS .25 / 2.
    assert D.rps(dist([.5, .5, 0]), dist([0, 1, 0]), k)[0] == pytest.approx(0.125)
    # Sampling floor, t = (.5, .5), n = 2: draws (2,0), (1,1), (0,2) with prob 1/4, 1/2, 1/4 -> WD .5, 0, .5,
    # expected .25; RPS .25, 0, .25 -> .125.
    fl = D.sampling_floor(dist([.5, .5]), np.array([2]), np.array([2]), draws=4000, seed=1)
    assert fl["wd"] == pytest.approx(0.25, abs=0.02) and fl["rps"] == pytest.approx(0.125, abs=0.01)
    # Split-half of two respondents who disagree: the halves are opposite point masses, every time.
    half = D.split_half_floor(dist([1, 1]), np.array([2]), draws=10)
    assert half == pytest.approx({"rps": 1.0, "wd": 1.0, "jsd": 1.0})
    # ... and of people who agree: the halves agree.
    assert D.split_half_floor(dist([0, 4]), np.array([2]), draws=10)["wd"] == 0.0
    # A half never exceeds its row and takes floor(n / 2) respondents.
    a, b = D._split_half(np.random.default_rng(0), dist([3, 0, 2], [1, 1, 1, 1], [0, 0]))
    assert (a.sum(1) == [2, 2, 0]).all() and (a >= 0).all() and (b >= 0).all()
    assert (a + b == dist([3, 0, 2], [1, 1, 1, 1], [0, 0])).all()


def test_calibration_by_hand():
    # Two items at confidence .9 (one right), two at .6 (both right): ECE = .5*|.9-.5| + .5*|.6-1| = .4.
    p = dist([.9, .1], [.9, .1], [.6, .4], [.4, .6])
    cal = D.calibration(p, np.array([0, 1, 0, 1]))
    assert cal["ece"] == pytest.approx(0.4)
    # Brier: (.1^2 + .1^2), (.9^2 + .9^2), (.4^2 + .4^2) twice -> mean (.02 + 1.62 + .32 + .32) / 4.
    assert cal["brier"] == pytest.approx((0.02 + 1.62 + 0.32 + 0.32) / 4)
    assert [b["count"] for b in cal["bins"]] == [2, 2]


def _items(counts, truth=None, country="A", q="Q1"):
    k = [len(c) for c in counts]
    truth = truth if truth is not None else [int(np.argmax(c)) for c in counts]
    return pd.DataFrame({"item": range(len(counts)), "truth": truth, "k": k, "counts": [list(c) for c in counts],
                         "country": country, "q_id": q, "split": "s"})


def test_a_perfect_sampler_scores_at_the_sampling_floor_and_a_perfect_probability_at_zero():
    rng = np.random.default_rng(3)
    counts = [[3, 1, 0, 0], [1, 1, 2, 0], [0, 2, 2, 1], [5, 0, 0, 1]] * 150
    items = _items(counts)
    t = dist(*[np.asarray(c) / sum(c) for c in counts])
    n = np.array([sum(c) for c in counts])
    floor = D.floors(items, draws=200)["sampling"]
    # The sampling readout of a model whose distribution IS the truth, with as many samples as respondents.
    rows = []
    for i, (c, m) in enumerate(zip(t, n)):
        for s, pred in enumerate(rng.choice(D.MAX_K, size=m, p=c)):
            rows.append({"item": i, "sample": s, "pred": int(pred)})
    model = pd.DataFrame(rows).merge(items, on="item")
    got_items, p, readout = D.item_probabilities(model)
    assert readout == "sampling"
    scores = D.score_distributions(got_items, p)
    for m in ("wd", "rps", "jsd"):
        assert scores[f"{m}_profile"] == pytest.approx(floor[f"{m}_profile"], rel=0.12), m
        assert floor[f"{m}_profile"] > 0.02
    # The same truth read out as probabilities scores 0.
    exact = D.score_distributions(items, t)
    assert exact["wd_profile"] == pytest.approx(0, abs=1e-12) and exact["rps_profile"] == pytest.approx(0, abs=1e-12)


def test_accuracy_ceiling_on_disagreeing_profiles():
    items = _items([[3, 1, 0], [2, 2, 0], [0, 4, 0]])  # the last agrees: not counted
    fl = D.floors(items, draws=5)
    assert fl["disagreement_items"] == 2
    assert fl["acc_ceiling_disagreement"] == pytest.approx((0.75 + 0.5) / 2)
    p = dist([1, 0, 0], [0, 1, 0], [0, 1, 0])
    d = D.disagreement_scores(items, p)
    assert d["ceiling"] == pytest.approx(0.625) and d["argmax_respondent_acc"] == pytest.approx((0.75 + 0.5) / 2)


# --------------------------------------------------------------------------------------------- targets


def _hand_set_wvs(tmp_path):
    """A synthetic WVS file where Türkiye has exactly three respondents of one profile, answers set by hand:
    Q29 = Strongly agree, Strongly agree, Disagree (they disagree); Q36 = 2, 2, 2 (they agree)."""
    frame = synth.generate(3000, seed=5)
    frame = frame[frame["B_COUNTRY_ALPHA"] != "TUR"].reset_index(drop=True)
    tur = frame.iloc[[0, 0, 0]].copy()
    tur["B_COUNTRY_ALPHA"], tur["B_COUNTRY"] = "TUR", 792
    tur["D_INTERVIEW"] = [792000001, 792000002, 792000003]  # three respondents, not one counted thrice
    tur["Q29"] = [1, 1, 3]
    tur["Q36"] = [2, 2, 2]
    frame = pd.concat([frame, tur], ignore_index=True)
    path = tmp_path / "wvs.csv"
    synth.write(frame, path)
    return path


def test_distributions_parquet_counts_hand_set_answers(tmp_path):
    out = tmp_path / "out"
    stats = prepare_wvs(_hand_set_wvs(tmp_path), out, quiet=True)
    dist_table = pd.read_parquet(out / "distributions.parquet")
    assert set(dist_table["level"]) == {"profile", "coarse", "country_question"}
    tur = dist_table[dist_table["country"] == "Türkiye"]
    prof = tur[tur["level"] == "profile"]
    assert prof["profile_id"].nunique() == 1 and set(prof["q_id"]) <= set(TRAIN_QUESTIONS)  # cross-country scope
    q29 = prof[prof["q_id"] == "Q29"].iloc[0]
    assert list(q29["counts"]) == [2, 0, 1, 0] and q29["n"] == 3 and not q29["consensus"]
    assert q29["entropy"] == pytest.approx(-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)))
    q36 = prof[prof["q_id"] == "Q36"].iloc[0]
    assert list(q36["counts"]) == [0, 3, 0, 0, 0] and q36["consensus"] and q36["entropy"] == 0
    cell = tur[(tur["level"] == "country_question") & (tur["q_id"] == "Q29")].iloc[0]
    assert pd.isna(cell["profile_id"]) and list(cell["counts"]) == [2, 0, 1, 0]
    # Every level counts every answer once: the three levels' totals agree per (country, question).
    totals = dist_table.groupby(["level", "country", "q_id"])["n"].sum().unstack("level")
    assert (totals["profile"] == totals["country_question"]).all() and (totals["coarse"] == totals["profile"]).all()

    # The H > 0 pair is a disagreement item with its counts; the consensus pair is a cross-country item.
    dis = pd.read_parquet(out / "disagreement.parquet")
    assert (dis["data_source"] == "dvmap-synthetic/disagreement").all()
    extra = pd.DataFrame(list(dis["extra_info"]))
    row = extra[(extra["country"] == "Türkiye") & (extra["q_id"] == "Q29")].iloc[0]
    assert list(row["counts"]) == [2, 0, 1, 0] and row["answer"] == "Strongly agree" and row["n"] == 3
    assert ((extra["counts"].map(lambda c: (np.asarray(c) > 0).sum())) >= 2).all()
    assert len(dis) == stats["distributions"]["profile_pairs_disagreeing"]
    cc = pd.DataFrame(list(pd.read_parquet(out / "cross_country.parquet")["extra_info"]))
    q36_row = cc[(cc["country"] == "Türkiye") & (cc["q_id"] == "Q36")].iloc[0]
    assert list(q36_row["counts"]) == [0, 3, 0, 0, 0] and q36_row["answer_index"] == 1
    # Every consensus split row's counts sit on its answer alone.
    for split in ("train", "val", "cross_value"):
        ex = pd.DataFrame(list(pd.read_parquet(out / f"{split}.parquet")["extra_info"]))
        assert all(c[a] == n == sum(c) for c, a, n in zip(ex["counts"], ex["answer_index"], ex["n"])), split
    assert "disagreement.parquet" in stats["outputs"] and "distributions.parquet" in stats["outputs"]


def test_answer_distributions_on_a_hand_built_frame():
    attrs = {a: ["x"] * 5 for a in ATTRIBUTE_NAMES}
    attrs["Country"] = ["Japan"] * 3 + ["Nigeria"] * 2
    frame = pd.DataFrame(attrs)
    frame["Q1"] = [0, 0, 1, 3, -1]  # -1: not answered
    frame["Q8"] = [1, 1, 1, 0, 0]  # Q8 is a cross-value question: out of scope for Nigeria
    got = answer_distributions(frame, ["Q1", "Q8"])
    prof = got[got["level"] == "profile"].set_index(["country", "q_id"])
    assert list(prof.loc[("Japan", "Q1"), "counts"]) == [2, 1, 0, 0]
    assert list(prof.loc[("Nigeria", "Q1"), "counts"]) == [0, 0, 0, 1] and prof.loc[("Nigeria", "Q1"), "n"] == 1
    assert list(prof.loc[("Japan", "Q8"), "counts"]) == [0, 3] and prof.loc[("Japan", "Q8"), "consensus"]
    assert ("Nigeria", "Q8") not in prof.index


# --------------------------------------------------------------------------------------------- readouts


def _direct_scores(model, tok, prompt, continuations):
    """Each continuation scored by a plain forward of the full text, from the shared token prefix on."""
    pre = tok(prompt, add_special_tokens=False)["input_ids"]
    fulls = [tok(prompt + c, add_special_tokens=False)["input_ids"] for c in continuations]
    start = scoring_start(pre, fulls)
    out = []
    for f in fulls:
        with torch.no_grad():
            lp = model(input_ids=torch.tensor([f])).logits[0].float().log_softmax(-1)
        out.append(sum(lp[j - 1, f[j]].item() for j in range(start, len(f))))
    return np.array(out)


@pytest.fixture(scope="module")
def merging_model(tmp_path_factory):
    """A Qwen2-style tokenizer trained so that a token straddles the ``<answer>`` boundary: Qwen2's pre-tokeniser
    splits ``<answer>Agree`` into ``<answer`` + ``>Agree`` (one non-letter may lead a word), and BPE then merges
    ``>Agree``, as real Qwen vocabularies do for frequent words. (transformers applies this pattern to any
    tokenizer saved beside a Qwen2 config, so the test trains with it too.)"""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from dvmap_verl.training.tiny import CHAT_TEMPLATE, SPECIAL_TOKENS, build_model

    out = tmp_path_factory.mktemp("merging")
    tok = Tokenizer(models.BPE())
    qwen2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(qwen2), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = [f"<answer>{o}</answer>" for o in ("Agree", "Disagree", "Strongly agree", "Neither")] * 50
    tok.train_from_iterator(text + ["user assistant Question: trust? Options: Agree, Disagree"], trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    hf.chat_template = CHAT_TEMPLATE
    hf.save_pretrained(str(out))
    build_model(out, hf)
    return out


def test_logprob_readout_is_exact_with_a_tokenizer_that_merges_across_the_boundary(merging_model):
    from dvmap_verl.evaluation.backends.hf import HFBackend

    backend = HFBackend(str(merging_model), GenerationSettings())
    tok = backend.tokenizer
    messages = ({"role": "user", "content": "Question: trust? Options: Agree, Disagree, Strongly agree, Neither"},)
    options = ["Agree", "Disagree", "Strongly agree", "Neither"]
    request = option_request(0, 0, messages, options)
    prompt = backend._prompt(request) + request.prefix
    glued = [tok(prompt, add_special_tokens=False)["input_ids"] + tok(c, add_special_tokens=False)["input_ids"]
             for c in request.continuations]
    whole = [tok(prompt + c, add_special_tokens=False)["input_ids"] for c in request.continuations]
    assert any(g != w for g, w in zip(glued, whole)), "the tokenizer must merge across the boundary"
    assert ">Agree" in tok.convert_ids_to_tokens(whole[0])
    got = []
    backend.score([request], lambda r, s: got.append(s), lambda r, e: (_ for _ in ()).throw(e))
    expected = _direct_scores(backend.model, tok, prompt, request.continuations)
    assert np.allclose(got[0].logprobs, expected, atol=1e-4)
    probs = np.array(got[0].probs())
    assert probs.sum() == pytest.approx(1.0) and (probs > 0).all()
    assert np.allclose(probs, np.exp(expected - expected.max()) / np.exp(expected - expected.max()).sum(), atol=1e-5)


def test_logprob_readouts_through_eval_and_report(tiny_model_dir, synthetic_data, tmp_path):
    data = synthetic_data(3000)
    for readout, samples in (("logprob", 1), ("logprob-after-reasoning", 2)):
        run = tmp_path / readout
        config = EvalConfig(backend="hf", model=str(tiny_model_dir), data=[str(data / "val.parquet"),
                            str(data / "disagreement.parquet")], limit=24, samples=samples, max_tokens=6,
                            temperature=0.7, readout=readout, train=str(data / "train.parquet"))
        backend = make_backend("hf", str(tiny_model_dir), config.generation(), batch_size=8)
        status = run_eval(backend, run, config, quiet=True)
        assert status["failed"] == 0 and status["written"] == 24 * samples
        preds = read_predictions(run / "predictions.jsonl")
        items = pd.read_parquet(run / "items.parquet")
        for rec in preds.itertuples():
            k = len(items["options"][rec.item])
            assert len(rec.probs) == k and sum(rec.probs) == pytest.approx(1.0, abs=1e-6)
            assert rec.pred == int(np.argmax(rec.probs)) and rec.readout == readout
            assert rec.completion.endswith(f"<answer>{items['options'][rec.item][rec.pred]}</answer>")
        if readout == "logprob":
            # One item recomputed by a direct forward over the full text.
            first = preds.iloc[0]
            req = option_request(0, 0, json.loads(items["messages"][first["item"]]),
                                 list(items["options"][first["item"]]))
            prompt = backend._prompt(req) + req.prefix
            lp = _direct_scores(backend.model, backend.tokenizer, prompt, req.continuations)
            assert np.allclose(first["probs"], np.exp(lp - lp.max()) / np.exp(lp - lp.max()).sum(), atol=1e-5)
        assert run_eval(backend, run, config, quiet=True)["requested"] == 0  # resume: nothing left
        report = build_report(run, bootstrap=0, importance=False)
        dist_out = report["distributional"]
        assert dist_out["readout"] == readout
        assert dist_out["model"]["profile_items"] > 0 and 0 <= dist_out["model"]["expected_acc"] <= 1
        assert set(dist_out["baselines"]) >= {"uniform", "majority_country_question"}
        fl = dist_out["floors"]
        assert fl["sampling"]["wd_profile"] > 0 and fl["human_split_half"]["wd_profile"] > 0
        assert fl["disagreement_items"] > 0 and 0 < fl["acc_ceiling_disagreement"] < 1
        for name in ("distributions_by_cell.png", "reliability.png", "distributional_floors.png"):
            assert (run / name).stat().st_size > 0
        text = (run / "report.md").read_text()
        assert "## Distributional" in text and "| sampling floor |" in text and "majority share" in text


def test_logprob_readout_refuses_samples_and_sampling_backends():
    with pytest.raises(ValueError, match="--samples 1"):
        EvalConfig(backend="hf", model="m", data=[], samples=4, readout="logprob")
    with pytest.raises(ValueError, match="unknown readout"):
        EvalConfig(backend="hf", model="m", data=[], readout="telepathy")


def test_openai_logprob_readout_matches_the_hf_readout(tiny_model_dir, synthetic_data, tmp_path):
    """The server tokenises and scores (here the same tiny model behind a fake vLLM server); the client only picks
    the shared prefix from the echoed tokens and offsets: both must give the HF backend's probabilities."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()

    def scorer(prompt):
        enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        with torch.no_grad():
            lp = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
        values = [None] + [lp[j - 1, ids[j]].item() for j in range(1, len(ids))]
        return [prompt[a:b] for a, b in enc["offset_mapping"]], values, [a for a, _ in enc["offset_mapping"]]

    data = synthetic_data(3000)
    runs = {}
    for backend_name in ("hf", "openai"):
        config = EvalConfig(backend=backend_name, model=str(tiny_model_dir), data=[str(data / "val.parquet")],
                            limit=6, readout="logprob")
        with FakeServer(fail_every=0, scorer=scorer) as server:
            backend = make_backend(backend_name, str(tiny_model_dir), config.generation(), base_url=server.base_url)
            assert run_eval(backend, tmp_path / backend_name, config, quiet=True)["failed"] == 0
        runs[backend_name] = read_predictions(tmp_path / backend_name / "predictions.jsonl").sort_values("item")
    assert len(runs["hf"]) == len(runs["openai"]) == 6
    for a, b in zip(runs["hf"]["probs"], runs["openai"]["probs"]):
        assert np.allclose(a, b, atol=1e-4)


# --------------------------------------------------------------------------------------------- pairs


def test_pairs_from_corpus_and_both_pair_readouts(tiny_model_dir, synthetic_data, tmp_path):
    from dvmap_verl.evaluation import pairs as P

    data = synthetic_data(3000)
    cli = [sys.executable, "-m", "dvmap_verl.cli"]
    pairs_path = tmp_path / "pairs.jsonl"
    subprocess.run(cli + ["pairs-from-corpus", "--data", str(data / "val.parquet"), "--out", str(pairs_path)],
                   check=True, capture_output=True, text=True)
    pairs = P.load_pairs(pairs_path)
    val = pd.DataFrame(list(pd.read_parquet(data / "val.parquet")["extra_info"]))
    assert len(pairs) == len(val)
    for p, v in zip(pairs.head(50).itertuples(), val.head(50).itertuples()):
        k = len(v.options)
        assert p.chosen == v.answer
        far = 0 if v.answer_index > (k - 1) / 2 else k - 1
        assert p.rejected == v.options[far] and abs(far - v.answer_index) >= (k - 1) / 2

    # Their own column names, mapped with --columns.
    theirs = pairs.rename(columns={"chosen": "aligned", "rejected": "misaligned", "question": "prompt_q"})
    theirs_path = tmp_path / "theirs.parquet"
    theirs.to_parquet(theirs_path)
    run = tmp_path / "run"
    proc = subprocess.run(cli + ["eval-pairs", "--data", str(theirs_path), "--backend", "hf", "--model",
                                 str(tiny_model_dir), "--out", str(run), "--limit", "20", "--bootstrap", "200",
                                 "--columns", "chosen=aligned", "rejected=misaligned", "question=prompt_q",
                                 "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["readouts"]) == {"likelihood", "judge"}
    like = metrics["readouts"]["likelihood"]
    recs = [json.loads(x) for x in (run / "predictions.jsonl").read_bytes().split(b"\n") if x]
    # PAA recomputed from the stored records: the share of pairs whose chosen log-prob beats the rejected one.
    likelihood = [r for r in recs if r["readout"] == "likelihood"]
    assert len(likelihood) == 20
    assert like["pairs"] == 20 and like["paa"] == sum(r["chosen"] > r["rejected"] for r in likelihood) / 20
    assert like["ci95"][0] <= like["paa"] <= like["ci95"][1]
    assert {"country", "gender", "religion"} <= set(like["by"])
    judge = metrics["readouts"]["judge"]
    assert sum(r["readout"] == "judge" for r in recs) == 40  # both orders of every pair
    # Judge PAA and consistency from the stored picks (order 0 shows the chosen answer as A, order 1 as B).
    picks = {(r["pair"], r["order"]): r["pick"] for r in recs if r["readout"] == "judge"}
    right = {k: p == ("A" if k[1] == 0 else "B") for k, p in picks.items()}
    assert judge["pairs"] == 20
    assert judge["paa"] == pytest.approx(sum(right.values()) / 40)
    assert judge["consistency"] == sum(right[(i, 0)] == right[(i, 1)] and picks[(i, 0)] in ("A", "B")
                                       and picks[(i, 1)] in ("A", "B") for i in range(20)) / 20
    # The likelihood record is the mean token log-prob of each answer, recomputed here by a plain forward.
    backend = make_backend("hf", str(tiny_model_dir), GenerationSettings())
    chosen_pairs = pd.read_parquet(run / "pairs.parquet")
    first = next(r for r in recs if r["readout"] == "likelihood")
    row = chosen_pairs.iloc[first["pair"]].to_dict()
    from dvmap_verl.evaluation.readouts import ScoreRequest

    req = ScoreRequest(0, 0, P.pair_messages(row), "", (row["chosen"], row["rejected"]))
    got = []
    backend.score([req], lambda r, s: got.append(s), lambda r, e: (_ for _ in ()).throw(e))
    assert got[0].mean_logprobs() == pytest.approx([first["chosen"], first["rejected"]], abs=1e-5)
    lp = _direct_scores(backend.model, backend.tokenizer, backend._prompt(req), req.continuations)
    assert np.allclose(np.array(got[0].logprobs), lp, atol=1e-4)
    # A bad mapping names the column and the table.
    bad = subprocess.run(cli + ["eval-pairs", "--data", str(theirs_path), "--backend", "hf", "--model",
                                str(tiny_model_dir), "--out", str(tmp_path / "bad"), "--quiet"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "missing column(s) ['question', 'chosen', 'rejected']" in bad.stderr


def test_judge_pick_parser():
    from dvmap_verl.evaluation.pairs import parse_pick

    assert parse_pick("<answer>A</answer>") == "A"
    assert parse_pick("I think <answer> b </answer>") == "B"
    assert parse_pick("Answer: B") == "B"
    assert parse_pick("neither") is None and parse_pick("") is None


def test_vllm_logprob_readout_through_a_stand_in_engine(tiny_model_dir, monkeypatch):
    """vLLM is GPU-only; a stand-in `LLM` returns `prompt_logprobs` as vLLM does (None, then {token: Logprob} per
    position), computed by the tiny model. Our vLLM scoring must then give the HF backend's probabilities, send
    token prompts (exact tokenisation) with prompt_logprobs=0 and one generated token, and nothing else."""
    import types

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    sent = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class LLM:
        def __init__(self, **kw):
            pass

        def get_tokenizer(self):
            return tok

        def generate(self, prompts, params, use_tqdm=False):
            sent.setdefault("params", []).append(params)
            outs = []
            for p in prompts:
                ids = p["prompt_token_ids"]
                with torch.no_grad():
                    lp = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
                per = [None] + [{ids[j]: types.SimpleNamespace(logprob=lp[j - 1, ids[j]].item())}
                                for j in range(1, len(ids))]
                outs.append(types.SimpleNamespace(prompt_logprobs=per))
            return outs

    fake = types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams,
                                 inputs=types.SimpleNamespace(TokensPrompt=lambda prompt_token_ids: {
                                     "prompt_token_ids": prompt_token_ids}))
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.inputs", fake.inputs)
    from dvmap_verl.evaluation.backends.hf import HFBackend
    from dvmap_verl.evaluation.backends.vllm import VLLMBackend

    settings = GenerationSettings(chat_template_kwargs={"enable_thinking": False})
    requests = [option_request(i, 0, ({"role": "user", "content": f"Question {i}: trust?"},),
                               ["Trust completely", "Trust somewhat", "Do not trust at all"]) for i in range(3)]
    got = {}
    for name, backend in (("vllm", VLLMBackend("m", settings, chunk=2)), ("hf", HFBackend(str(tiny_model_dir),
                                                                                           settings))):
        backend.score(requests, lambda r, s: got.setdefault(name, {}).__setitem__(r.item, s.probs()),
                      lambda r, e: (_ for _ in ()).throw(e))
    for i in range(3):
        assert np.allclose(got["vllm"][i], got["hf"][i], atol=1e-5)
    assert all(p.prompt_logprobs == 0 and p.max_tokens == 1 for p in sent["params"])
    assert len(sent["params"]) == 2  # chunks of 2 items: all options of an item in one generate call


def test_disagreement_split_is_capped_per_country_and_seeded():
    from dvmap_verl.data.splits import SplitConfig, cap_profiles

    rows = pd.DataFrame({"Country": ["A"] * 6 + ["B"] * 2, "profile_key": list("ppqqrs") + ["t", "u"],
                         "Q_id": ["Q1", "Q2"] * 4})
    capped = cap_profiles(rows, 2, seed=1)
    assert capped.groupby("Country")["profile_key"].nunique().to_dict() == {"A": 2, "B": 2}
    assert capped.equals(cap_profiles(rows, 2, seed=1))  # seeded
    assert set(capped[capped["profile_key"] == "p"]["Q_id"]) in (set(), {"Q1", "Q2"})  # whole profiles kept
    assert cap_profiles(rows, None, seed=1).equals(rows)
    assert SplitConfig(disagreement_max_profiles_per_country=0).disagreement_max_profiles_per_country is None


def test_new_entry_points_refuse_bad_input_before_writing(tmp_path):
    cli = [sys.executable, "-m", "dvmap_verl.cli"]
    (tmp_path / "torn.jsonl").write_text('{"question": "q", "chosen": "a"\n')
    pd.DataFrame({"question": [], "chosen": [], "rejected": []}).to_parquet(tmp_path / "empty.parquet")
    cases = [
        (["eval-pairs", "--data", str(tmp_path / "torn.jsonl")], "torn.jsonl: not a JSON Lines table of pairs"),
        (["eval-pairs", "--data", str(tmp_path / "empty.parquet")], "empty.parquet: holds no pairs"),
        (["eval-pairs", "--data", str(tmp_path / "missing.parquet")], "missing.parquet: no such file or folder"),
    ]
    for args, message in cases:
        res = subprocess.run(cli + args + ["--backend", "hf", "--model", "m", "--out", str(tmp_path / "run")],
                             capture_output=True, text=True)
        assert res.returncode == 2 and message in res.stderr, res.stderr
    res = subprocess.run(cli + ["eval", "--backend", "hf", "--model", "m", "--data", str(tmp_path / "x.parquet"),
                                "--out", str(tmp_path / "run"), "--readout", "logprob", "--replicas", "2"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--replicas is for sampling runs" in res.stderr
    assert not (tmp_path / "run").exists()  # nothing written for any of them
