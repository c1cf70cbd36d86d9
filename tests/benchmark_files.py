"""Synthetic peer-benchmark inputs written the way the sources ship them (see ../shared/BENCHMARK_FORMATS.md):
made-up values, real layouts, every parser pitfall. Shared by the import, metric and end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path

# GlobalOpinionQA: one CSV; ``selections`` a defaultdict repr; ``options`` a list repr whose apostrophes come
# CSV-doubled; a country qualifier; a refusal option; percentages in one row; a sum drifting to 0.998.
GOQA_CSV = '''question,selections,options,source
"Should the town build bike lanes?","defaultdict(<class 'list'>, {'Atlantis': [0.52, 0.31, 0.17], 'Freedonia (non-national sample)': [0.4, 0.4, 0.2]})","['Yes', 'No', ""Don't know/Refused""]",GAS
"How important is leisure?","defaultdict(<class 'list'>, {'Freedonia': [31.0, 45.0, 17.0, 7.0]})","['Very important', 'Rather important', 'Not very important', 'Not at all important']",WVS
"Which is the town's best park?","defaultdict(<class 'list'>, {'Atlantis': [0.5, 0.3, 0.198]})","[""Miller's Green"", 'Riverside', 'Old Mill']",GAS
'''
# The row at index 2538 of the real file has a NaN question: an empty cell.
GOQA_BAD_ROW = ''',"defaultdict(<class 'list'>, {'Atlantis': [0.5, 0.5]})","['Yes', 'No']",GAS
'''

# OpinionQA, one wave folder: info.csv with its exact header (a non-monotone ordinal with a two-option tail, and
# a degenerate all-equal ordinal given as ints), metadata.csv with gaps in its index and an apostrophe, and
# responses.csv with labels, the attributes and WEIGHT_W99 (one respondent left ORIENT_W99 empty).
OQA_INFO = ''',Unnamed: 0.1,Unnamed: 0,key,option_mapping,question,references,option_ordinal
0,0,0,PARKS_W99,"{1.0: 'Very satisfied', 2.0: 'Somewhat satisfied', 3.0: 'Not satisfied', 99.0: 'Refused'}",How satisfied are you with parks?,"['Very satisfied', 'Somewhat satisfied', 'Not satisfied', 'Refused']","[1.0, 2.0, 3.0]"
1,1,1,TRUSTB_W99,"{1.0: 'Trust', 2.0: 'Distrust', 3.0: 'Neither', 8.0: 'Not sure', 99.0: 'Refused'}",Do you trust neighbors?,"['Trust', 'Distrust', 'Neither', 'Not sure', 'Refused']","[1.0, 2.0, 1.5]"
2,2,2,ORIENT_W99,"{1.0: 'A', 2.0: 'B', 3.0: 'C', 4.0: 'D', 99.0: 'Refused'}",Which orientation?,"['A', 'B', 'C', 'D', 'Refused']","[1, 1, 1, 1]"
'''
OQA_METADATA = ''',key,options
0,SEX,"['Male', 'Female']"
4,EDUCATION,"['Less than high school', ""Associate's degree""]"
'''
OQA_RESPONSES = '''QKEY,PARKS_W99,TRUSTB_W99,ORIENT_W99,SEX,EDUCATION,WEIGHT_W99
1,Very satisfied,Trust,A,Male,Less than high school,1.0
2,Somewhat satisfied,Neither,B,Male,Associate's degree,2.0
3,Refused,Not sure,A,Female,Associate's degree,0.5
4,Not satisfied,Distrust,,Female,Less than high school,1.5
5,Very satisfied,Refused,C,Female,Associate's degree,1.0
'''

# The distributional benchmark's count file (Meister et al.): groups sorted alphabetically, zero counts absent.
OQA_COUNTS = {
    "PARKS_W99": {"MC_options": ["Very satisfied", "Somewhat satisfied", "Not satisfied", "Refused"],
                  "question_text": "How satisfied are you with parks?",
                  "Democrat": {"Not satisfied": 12.0, "Refused": 1.0, "Somewhat satisfied": 40.0,
                               "Very satisfied": 30.0},
                  "Republican": {"Not satisfied": 9.0, "Somewhat satisfied": 35.0, "Very satisfied": 41.0}},
}

# SubPOP processed CSV: str-repr lists, options one longer than responses (Refused last), SubPOP-Train's all-1.0
# placeholder ordinal, a -1.0 (non-ordinal) option, an out-of-order ordinal, a comma inside a quoted question.
SUBPOP_CSV = '''qkey,attribute,group,responses,refusal_rate,ordinal,question,options
PARKS_W130,POLPARTY,Democrat,"[0.5, 0.3, 0.2]",0.012,"[1.0, 1.0, 1.0]",How satisfied are you with parks?,"['Very satisfied', 'Somewhat satisfied', 'Not satisfied', 'Refused']"
natparks,SEX,Female,"[0.25, 0.6, 0.15]",0.004,"[1.0, 2.0, 3.0]","Spending on parks: too much, too little?","['Too little', 'About right', 'Too much', 'Refused']"
livinst,SEX,Male,"[0.2, 0.5, 0.3]",0.0,"[1.0, 2.0, -1.0]",Where did you live at 16?,"['City', 'Suburb', 'Lived in institution', 'Refused']"
natarms,SEX,Male,"[0.3, 0.3, 0.4]",0.01,"[1.0, 3.0, 2.0]",Spending on arms?,"['Too little', 'Too much', 'About right', 'Refused']"
'''
SUBPOP_BAD_ROWS = '''natroad,SEX,Male,"[0.3, 0.7]",,"[1.0, 2.0]",Spending on roads?,"['Too little', 'Too much', 'Refused']"
natsoc,SEX,Male,"[0.5, 0.5]",0.02,"[1.0, 2.0]",Spending on social security?,"['Too little', 'About right', 'Too much', 'Refused']"
'''
SUBPOP_JSONL = [
    {"qkey": "CONF_W130", "attribute": "SEX", "group": "Female", "question": "Will you vote?",
     "options": ["Yes", "Haven't decided", "No", "Refused"], "responses": [0.6, 0.25, 0.15],
     "refusal_rate": 0.05, "ordinal": [1.0, 2.0, 3.0]},
]

# WorldValuesBench: the generated TSVs (an empty cell = missing; "2.0" read as 2), question_metadata.json (an
# ordinal 1-4, a 1-10, a non-ordinal question), the codebook's non-ASCII text in a demographic cell, the probe set.
WVB_METADATA = {
    "D_INTERVIEW": {"question": "Interview ID", "category": "", "use_case": "demographic", "answer_scale_min": "",
                    "answer_scale_max": "", "answer_data_type": "non_ordinal"},
    "Q1": {"question": "How important is family?", "category": "Social Values", "use_case": "value",
           "answer_scale_min": 1, "answer_scale_max": 4, "answer_data_type": "ordinal"},
    "Q2": {"question": "How justifiable is cheating on taxes?", "category": "Ethical Values", "use_case": "value",
           "answer_scale_min": 1, "answer_scale_max": 10, "answer_data_type": "ordinal"},
    "Q300": {"question": "Which party appeals to you?", "category": "Political Culture", "use_case": "value",
             "answer_scale_min": "", "answer_scale_max": "", "answer_data_type": "non_ordinal"},
}
WVB_VALUES = ("D_INTERVIEW\tQ1\tQ2\tQ300\n"
              "999070001\t1\t2\t1\n"
              "999070002\t2\t\t2\n"
              "999070003\t2.0\t10\t1\n"
              "999070004\t4\t9\t3\n"
              "999070005\t3\t5\t\n")
WVB_DEMOGRAPHIC = ("D_INTERVIEW\tA_YEAR\tB_COUNTRY\tH_URBRURAL\tQ275\tQ288\n"
                   "999070001\t2019\tAtlantis\tUrban\tLower secondary\t3\n"
                   "999070002\t2019\tAtlantis\tRural\tDon\u00b4t know\t\n"
                   "999070003\t2019\tAtlantis\tUrban\tUpper secondary\t5\n"
                   "999070004\t2018\tFreedonia\tRural\tBachelor\t7\n"
                   "999070005\t2018\tFreedonia\tUrban\tMaster\t2\n")
WVB_PROBE = "Question\tQuestion Category\tContinent\tUrban / Rural\tEducation\tD_INTERVIEW\n" + "".join(
    f"{q}\t{cat}\t{cont}\t{ur}\t{edu}\t{pid}\n" for q, cat in (("Q1", "Social Values"), ("Q2", "Ethical Values"))
    for cont, ur, edu, pid in (("Europe", "Urban", "Lower", 999070001), ("Europe", "Urban", "Lower", 999070002),
                               ("Europe", "Urban", "Lower", 999070003), ("Asia", "Rural", "Higher", 999070004),
                               ("Asia", "Rural", "Higher", 999070005)))


def write_goqa(folder: Path, bad: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "global_opinions.csv"
    path.write_text(GOQA_CSV + (GOQA_BAD_ROW if bad else ""), encoding="utf-8")
    return path


def write_opinionqa(root: Path) -> Path:
    wave = root / "American_Trends_Panel_W99"
    wave.mkdir(parents=True, exist_ok=True)
    (wave / "info.csv").write_text(OQA_INFO, encoding="utf-8")
    (wave / "metadata.csv").write_text(OQA_METADATA, encoding="utf-8")
    (wave / "responses.csv").write_text(OQA_RESPONSES, encoding="utf-8")
    return root


def write_opinionqa_counts(folder: Path, with_info: bool = True, extra: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "POLPARTY_data.json").write_text(json.dumps({**OQA_COUNTS, **(extra or {})}), encoding="utf-8")
    if with_info:
        (folder / "info.csv").write_text(OQA_INFO, encoding="utf-8")
    return folder


def write_subpop(folder: Path, bad: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subpop_eval.csv").write_text(SUBPOP_CSV + (SUBPOP_BAD_ROWS if bad else ""), encoding="utf-8")
    (folder / "subpop_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SUBPOP_JSONL),
                                               encoding="utf-8")
    return folder


def write_wvb(root: Path, values: str = WVB_VALUES) -> Path:
    (root / "full").mkdir(parents=True, exist_ok=True)
    (root / "probe").mkdir(parents=True, exist_ok=True)
    (root / "question_metadata.json").write_text(json.dumps(WVB_METADATA, ensure_ascii=False), encoding="utf-8")
    (root / "full" / "full_value_qa.tsv").write_text(values, encoding="utf-8")
    (root / "full" / "full_demographic_qa.tsv").write_text(WVB_DEMOGRAPHIC, encoding="utf-8")
    (root / "probe" / "samples.tsv").write_text(WVB_PROBE, encoding="utf-8")
    return root
