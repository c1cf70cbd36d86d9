"""``dvmap prepare wvs|release``: build VeRL parquet splits from a raw WVS Wave 7 file or the authors' release."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dvmap_verl.commands.common import OVERWRITE, QUIET, fraction, non_negative_int, unit_interval
from dvmap_verl.commands import prepare_sft


#: Ctrl-C during a WVS or release prepare: its outputs are staged and committed whole, so the folder is as it was.
INTERRUPTED = "dvmap: interrupted; nothing was written (the output folder holds what it held before): rerun the command"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("prepare", help="build VeRL parquet splits")
    sources = parser.add_subparsers(dest="source", required=True)
    _add_wvs(sources)
    _add_release(sources)
    prepare_sft.add_parser(sources)
    return parser


def _add_wvs(sources) -> None:
    from dvmap_verl.data.archetypes import CONSENSUS_RULES
    from dvmap_verl.data.prompts import SYSTEM_PROMPTS, USER_TEMPLATES

    w = sources.add_parser("wvs", help="from a raw WVS Wave 7 file (.csv, .sav, .dta, .parquet)")
    w.add_argument("--input", required=True, type=Path, help="the WVS Wave 7 file (.csv, .sav, .dta or .parquet)")
    w.add_argument("--out", required=True, type=Path, help="output folder for the splits, corpus and stats.json")
    w.add_argument("--max-profiles-per-country", type=non_negative_int, default=400,
                   help="profiles per training country (default 400: the paper's size); 0 = no cap")
    w.add_argument("--cross-country-max-profiles-per-country", type=non_negative_int, default=64,
                   help="profiles per unseen country in cross_country (default 64); 0 = no cap")
    w.add_argument("--cross-value-max-profiles-per-country", type=non_negative_int, default=105,
                   help="profiles per country in cross_value (default 105); 0 = no cap")
    w.add_argument("--disagreement-max-profiles-per-country", type=non_negative_int, default=100,
                   help="disagreeing (H > 0) profiles per country in disagreement.parquet (default 100); 0 = no cap")
    w.add_argument("--val-frac", type=fraction, default=0.115, help="share of training profiles held out as val")
    w.add_argument("--cross-demographic-frac", type=fraction, default=0.10,
                   help="share of training-country profiles held out as cross_demographic")
    w.add_argument("--seed", type=int, default=0, help="seed of the profile caps and the split assignment")
    w.add_argument("--consensus", choices=CONSENSUS_RULES, default="strict",
                   help="strict: H = 0 (paper); majority: H >= 0 ablation (paper Table 3); all: every pair, ties to "
                        "the lower option (distribution training: the target is the counts)")
    w.add_argument("--targets", choices=["point", "distribution"], default="point",
                   help="distribution: also write extra_info.target, the profile's answer distribution, for the "
                        "rps reward")
    w.add_argument("--target-smoothing", type=unit_interval, default=0.0, metavar="LAMBDA",
                   help="distribution targets: mix a consensus row's point mass with its (country, question, "
                        "gender, life stage) cell: (1 - LAMBDA) * point + LAMBDA * cell (default 0)")
    w.add_argument("--labels", type=Path, help="JSON {variable: {code: label}} for a CSV's religion/language codes, "
                   "or to map a column exported as label text back to its codes")
    w.add_argument("--drop-duplicate-respondents", action="store_true",
                   help="keep the first of duplicated respondents (same country and D_INTERVIEW, or identical rows) "
                        "and count the rest in stats.json (default: refuse the file)")
    w.add_argument("--template", choices=sorted(USER_TEMPLATES), default="release",
                   help="user prompt: release (byte-exact structured CoT, default), paper (Algorithm 1), free (free "
                        "reasoning) or direct (answer only): the paper's Table 4 settings")
    w.add_argument("--system-prompt", choices=sorted(SYSTEM_PROMPTS), default=None,
                   help="system message (default: the one the template asks for: release's <reasoning>/<answer> "
                        "format, answer_only for direct)")
    w.add_argument("--bank", type=Path, default=None,
                   help="question bank YAML (README: Question bank; dvmap question-bank drafts one); default: the "
                        "paper's 23 questions")
    w.add_argument("--train-countries", default=None, metavar="ISO3,...|all-others",
                   help="training countries (ISO alpha-3 codes, or all-others); default: the paper's 10")
    w.add_argument("--unseen-countries", default=None, metavar="ISO3,...|all-others",
                   help="cross-country (unseen) countries (ISO alpha-3 codes, all-others, or none); default: the "
                        "paper's 8")
    w.add_argument("--weights", default=None, metavar="COLUMN",
                   help="survey weight column (W_WEIGHT; S018 in the joint EVS/WVS file): weighted answer counts "
                        "beside the raw ones; distribution targets use them")
    w.add_argument("--overwrite", **OVERWRITE)
    w.add_argument("--quiet", **QUIET)
    w.set_defaults(interrupted=INTERRUPTED)


def _add_release(sources) -> None:
    from dvmap_verl.data.prompts import SYSTEM_PROMPTS, USER_TEMPLATES

    r = sources.add_parser("release", help="from the authors' released corpus / benchmark")
    r.add_argument("--input", required=True, type=Path,
                   help="the release's clone root, DVMap_Corpus or Triple-Generalization_Evaluation_Benchmark, "
                        "or one parquet file or Cross-* folder")
    r.add_argument("--out", required=True, type=Path, help="output folder for the splits, corpus and stats.json")
    r.add_argument("--template", choices=sorted(USER_TEMPLATES), default=None,
                   help="re-render every prompt from the row's attributes with this template (default: keep the "
                        "release's prompts verbatim)")
    r.add_argument("--system-prompt", choices=sorted(SYSTEM_PROMPTS), default=None,
                   help="system message (default: the one the template asks for; the release's without --template)")
    r.add_argument("--targets", choices=["point", "distribution"], default="point",
                   help="distribution: extra_info.target = the row's (country, question) cell distribution, the "
                        "only real distribution the release holds (it has no respondent data)")
    r.add_argument("--overwrite", **OVERWRITE)
    r.add_argument("--quiet", **QUIET)
    r.set_defaults(interrupted=INTERRUPTED)


def run(args: argparse.Namespace) -> int:
    return {"release": run_release, "sft": prepare_sft.run}.get(args.source, run_wvs)(args)


def run_wvs(args: argparse.Namespace) -> int:
    from dvmap_verl.allocator import batch_memory
    from dvmap_verl.data.prepare import EmptySplitError, prepare_wvs
    from dvmap_verl.data.splits import SplitConfig

    config = SplitConfig(
        max_profiles_per_country=args.max_profiles_per_country,
        cross_country_max_profiles_per_country=args.cross_country_max_profiles_per_country,
        cross_value_max_profiles_per_country=args.cross_value_max_profiles_per_country,
        disagreement_max_profiles_per_country=args.disagreement_max_profiles_per_country,
        val_frac=args.val_frac,
        cross_demographic_frac=args.cross_demographic_frac,
        seed=args.seed,
    )
    try:
        with batch_memory():  # this process's allocator set for one job of gigabytes (dvmap_verl.allocator)
            stats = prepare_wvs(args.input, args.out, config=config, consensus=args.consensus, labels=args.labels,
                                template=args.template, system=args.system_prompt, overwrite=args.overwrite,
                                quiet=args.quiet, targets=args.targets, target_smoothing=args.target_smoothing,
                                drop_duplicate_respondents=args.drop_duplicate_respondents, bank=args.bank,
                                train_countries=args.train_countries, unseen_countries=args.unseen_countries,
                                weights=args.weights)
    except EmptySplitError as e:  # the input was read fine but yields nothing: exit 1, not a usage error (2)
        print(f"dvmap: error: {e}", file=sys.stderr)
        return 1
    _print_stats(stats, Path(args.out), args.quiet)
    return 0


def _print_stats(stats: dict, out: Path, quiet: bool = False) -> None:
    """The run's summary; ``quiet`` leaves out the per-split lines (a synthetic-data note and what the input
    lacked are always said)."""
    if stats.get("synthetic"):
        print(f"NOTE: {stats['note']}")
    a = stats["archetypes"]
    print(f"respondents read {stats['respondents_read']:,}, kept {stats['respondents_kept']:,}; "
          f"profiles {a['profiles']:,}; respondents in shared profiles {a['shared_profile_respondent_share']:.1%}; "
          f"(profile, question) pairs dropped by H>0 {a['pairs_dropped_share']:.1%} "
          f"({a['answers_dropped_share']:.1%} of answers)")
    if not quiet:
        for name, s in stats["splits"].items():
            print(f"{name:>18}: {s['rows']:>7,} rows, {s['profiles']:>6,} profiles -> {out / (name + '.parquet')}")
        print(f"corpus and stats -> {out / 'corpus.parquet'}, {out / 'stats.json'}")
    # What the input lacked or had changed, stated once (all zero/empty for a clean file).
    print(f"question columns absent: {', '.join(stats['questions_missing']) or 'none'}; duplicated respondents "
          f"dropped: {stats['duplicate_respondents_dropped']:,}; text mapped to codes: "
          f"{stats['values_coerced'] or 'none'}; codes out of range (missing): {stats['values_out_of_range'] or 'none'}")


def run_release(args: argparse.Namespace) -> int:
    from dvmap_verl.data.release import prepare_release

    prepare_release(args.input, args.out, template=args.template, system=args.system_prompt,
                    overwrite=args.overwrite, quiet=args.quiet, targets=args.targets)
    print(f"VeRL parquet, corpus.parquet and stats.json -> {args.out}")
    return 0
