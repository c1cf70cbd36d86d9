"""Prompts: the release's structured chain-of-thought template (byte for byte), the paper's Algorithm 1 wording,
and the system messages that ask for the <reasoning>/<answer> format.
"""

from __future__ import annotations

import textwrap
from typing import Mapping

from dvmap_verl.errors import InputError

# The release's user message. Kept byte for byte, quirks included: single quotes around five attributes, no space in
# "{Common Language}.You practice", a trailing space after the role paragraph, 12-space indentation. It is three
# blocks: the profile sentence, the reasoning instruction, the question/options block. The prompt-strategy templates
# of the paper's Table 4 (free, direct) share the first and the last and change only the instruction.
_PROFILE = (
    "\n                You are playing the role of a {Life Stage} {Gender} from {Country}. You are {Marital Status} and "
    "{Has Children}. You have completed your education at the level of '{Education Level}'. Currently, you work as "
    "a '{Occupation}'. Your work involves '{Work Nature}'. Your income level is '{Income Bracket}', which is "
    "categorized as low, medium, or high. Your native language is {Common Language}.You practice the religion of "
    "'{Religion}'. \n"
)
_STRUCTURED = (
    "            Based on the character's personal information (such as education, occupation, income, religious "
    "beliefs, life stage, etc.) and the given value-based question, please follow these steps:\n\n"
    "            1. **Analyze the current question in relation to the character's identity and values:**  \n"
    "            Consider whether the current question aligns or conflicts with the character's background, social "
    "context, and personal beliefs. For each identity attribute (e.g., education, occupation, income, etc.), keep "
    "the analysis concise (1-3 sentences).\n\n"
    "            2. **Provide reasoning for each option:**  \n"
    "            Explain why each option aligns or misaligns with the character's identity, values, and beliefs. You "
    "may reference education level, income bracket, religion, occupation, life stage, and other relevant traits. "
    "Keep the reasoning for each option brief (1-3 sentences).\n\n"
    "            3. **Select the most appropriate answer:**  \n"
    "            After analyzing all options, choose the one that best reflects the character's social background, "
    "personal beliefs, and core values. **Only output the final answer inside the `<answer></answer>` tags, "
    "without any additional explanation.**\n\n"
)
# Table 4's "standard RL with free reasoning" / "inference-only CoT": reasoning in the model's own words.
_FREE = (
    "            Based on the character's personal information (such as education, occupation, income, religious "
    "beliefs, life stage, etc.) and the given value-based question, think it through in your own words, then give "
    "the answer that best reflects the character. **Output the final answer inside the `<answer></answer>` tags.**"
    "\n\n"
)
# Table 4's "base model answering directly": no reasoning at all.
_DIRECT = (
    "            Based on the character's personal information (such as education, occupation, income, religious "
    "beliefs, life stage, etc.) and the given value-based question, choose the answer that best reflects the "
    "character. **Only output the final answer inside the `<answer></answer>` tags, without any explanation or "
    "reasoning.**\n\n"
)
# The distribution template (distribution-anchored GRPO): the same reasoning steps, but the answer is the share of
# people like the character who would give each option. The marker sentence lets evaluation recognise it.
DISTRIBUTION_MARKER = "estimate how people who share the character's background answer"
_DISTRIBUTION = (
    "            Based on the character's personal information (such as education, occupation, income, religious "
    "beliefs, life stage, etc.) and the given value-based question, " + DISTRIBUTION_MARKER + ". Please follow these "
    "steps:\n\n"
    "            1. **Analyze the current question in relation to the character's identity and values:**  \n"
    "            Consider whether the current question aligns or conflicts with the character's background, social "
    "context, and personal beliefs. For each identity attribute (e.g., education, occupation, income, etc.), keep "
    "the analysis concise (1-3 sentences).\n\n"
    "            2. **Provide reasoning for each option:**  \n"
    "            Explain why each option aligns or misaligns with the character's identity, values, and beliefs. Keep "
    "the reasoning for each option brief (1-3 sentences).\n\n"
    "            3. **State the answer distribution:**  \n"
    "            Give the share of people with this background who would choose each option, as probabilities that "
    "sum to 1. **Only output one line per option inside the `<answer></answer>` tags, in the form `Option: "
    "probability` (for example `Agree: 0.35`), without any additional explanation.**\n\n"
)
_QUESTION = (
    "            \n"
    "            **Question**: {Question}\n"
    "            **Options**: {Options}\n"
    "            "
)
PROFILE_TEMPLATE = _PROFILE  # the profile sentence alone (preference pairs, distribution template)
RELEASE_TEMPLATE = _PROFILE + _STRUCTURED + _QUESTION
FREE_TEMPLATE = _PROFILE + _FREE + _QUESTION
DIRECT_TEMPLATE = _PROFILE + _DIRECT + _QUESTION
DISTRIBUTION_TEMPLATE = _PROFILE + _DISTRIBUTION + _QUESTION

# The paper's Algorithm 1 (Appendix C), as printed.
PAPER_TEMPLATE = (
    "Demographic Archetypes Injection:\n"
    "You are playing the role of a {Life Stage} {Gender} from {Country}.\n"
    "You are {Marital Status} and {Has Children}.\n"
    "You have completed your education at the level of {Education Level}.\n"
    "Currently, you work as a {Occupation}. Your work involves {Work Nature}.\n"
    "Your income level is {Income Bracket}, which is categorized as low, medium, or high.\n"
    "Your native language is {Common Language}.\n"
    "You practice the religion of {Religion}.\n"
    "Task Description:\n"
    "Based on the character's personal information (such as education, occupation, income, religious beliefs, life "
    "stage, etc.) and the given value-based question, please follow the structured reasoning steps below.\n"
    "Structured CoT Instruction:\n"
    "1. Analyze the current question in relation to the character's identity and values: Consider whether the "
    "current question aligns or conflicts with the character's background, social context, and personal beliefs. "
    "For each identity attribute (e.g., education, occupation, income, etc.), keep the analysis concise (1-3 "
    "sentences).\n"
    "2. Provide reasoning for each option: Explain why each option aligns or misaligns with the character's "
    "identity, values, and beliefs. You may reference education level, income bracket, religion, occupation, life "
    "stage, and other relevant traits. Keep the reasoning for each option brief (1-3 sentences).\n"
    "3. Select the most appropriate answer: After analyzing all options, choose the one that best reflects the "
    "character's social background, personal beliefs, and core values.\n"
    "Output Constraint:\n"
    "Only output the final answer inside the <answer></answer> tags, without any additional explanation.\n"
    "Input Data:\n"
    "\"Question\": {Question}\n"
    "\"Options\": {Options}"
)

USER_TEMPLATES = {"release": RELEASE_TEMPLATE, "paper": PAPER_TEMPLATE, "free": FREE_TEMPLATE,
                  "direct": DIRECT_TEMPLATE, "distribution": DISTRIBUTION_TEMPLATE}

_FORMAT = "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>"
# The release's evaluation copy is flush left; its training copy is indented by 24 spaces per line.
SYSTEM_PROMPTS = {
    "release": _FORMAT,
    "release_train": textwrap.indent(_FORMAT, " " * 24),
    "answer_only": "Respond in the following format:\n<answer>\n...\n</answer>",
    "none": None,
}

#: What each template asks for: its system message and the reward's ``format_tags`` preset. A template that asks
#: for no reasoning must not be rewarded (or faulted) for <reasoning> tags.
TEMPLATE_FORMAT = {
    "release": ("release", "release"),
    "paper": ("release", "release"),
    "free": ("release", "free"),
    "direct": ("answer_only", "direct"),
    "distribution": ("release", "release"),
}


def states_distribution(user_message: str) -> bool:
    """Whether a prompt was made with the distribution template (its answers are stated distributions)."""
    return DISTRIBUTION_MARKER in user_message


def template_system(template: str) -> str:
    """The system-message name that matches ``template`` (what it asks the model to write)."""
    return TEMPLATE_FORMAT[template][0] if template in TEMPLATE_FORMAT else "release"


def template_format_tags(template: str) -> str:
    """The reward's ``format_tags`` preset that matches ``template``."""
    return TEMPLATE_FORMAT[template][1] if template in TEMPLATE_FORMAT else "release"


def user_prompt(fields: Mapping[str, str], template: str = "release") -> str:
    """The user message for one item; ``fields`` holds the 11 attributes, ``Question`` and ``Options`` (a string)."""
    try:
        tpl = USER_TEMPLATES[template]
    except KeyError:
        raise InputError(f"unknown prompt template {template!r}; known: {sorted(USER_TEMPLATES)}") from None
    return tpl.format_map(fields)


def template_parts(template: str = "release") -> tuple[str, str]:
    """(identity part, question part) of a template: the first depends on the profile only, the second on the
    question only, so a corpus formats each profile and each question once."""
    tpl = USER_TEMPLATES[template] if template in USER_TEMPLATES else user_prompt({}, template)
    cut = tpl.index("{Question}")
    cut = tpl.rindex("\n", 0, cut) + 1 if "\n" in tpl[:cut] else cut
    return tpl[:cut], tpl[cut:]


def system_prompt(name: str = "release") -> str | None:
    try:
        return SYSTEM_PROMPTS[name]
    except KeyError:
        raise InputError(f"unknown system prompt {name!r}; known: {sorted(SYSTEM_PROMPTS)}") from None


def chat_messages(user: str, system: str | None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user})
    return msgs
