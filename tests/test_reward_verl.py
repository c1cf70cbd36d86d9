"""The reward through verl 0.9.1's own code: config composition, load_reward_manager, and the Ray reward loop."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from dvmap_verl.reward import DEFAULT_BETA, SCORE_KEYS
from dvmap_verl.training.dryrun import compose_ppo_config, rollout_batch, score_on_ray

IMPORTANT = ["Very important", "Rather important", "Not very important", "Not at all important"]
AGREE4 = ["Strongly agree", "Agree", "Disagree", "Strongly disagree"]

REWARD_OVERRIDES = [
    "reward.custom_reward_function.path=pkg://dvmap_verl.reward",
    "reward.custom_reward_function.name=compute_score",
]

# (completion as a model writes it, ground truth, options, expected acc, expected format share)
CASES = [
    ("<reasoning>\nShe is devout.\n</reasoning>\n<answer>\nVery important\n</answer>", "Very important", IMPORTANT, 1.0, 1.0),
    ("<reasoning>\nFamily is central.\n</reasoning>\n<answer> Very important. </answer>", "Very important", IMPORTANT, 1.0, 1.0),
    ("<reasoning>\nSecular, urban.\n</reasoning>\n<answer>**Not very important**</answer>", "Rather important", IMPORTANT, 0.0, 1.0),
    ("I think the answer is Agree.", "Agree", AGREE4, 0.0, 0.0),
    ("<answer>Disagree</answer>", "Disagree", AGREE4, 1.0, 0.5),
    ("<reasoning>\nHmm\n</reasoning>\n<answer>Agree or Disagree</answer>", "Agree", AGREE4, 0.0, 1.0),
]


def _rows(cases):
    return [
        {
            "data_source": "dvmap/wvs",
            "reward_model": {"style": "rule", "ground_truth": truth},
            "extra_info": {"options": list(options), "q_id": "Q1", "frequency": 0.5},
        }
        for _, truth, options, _, _ in cases
    ]


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


def test_load_reward_manager_scores_decoded_rollouts(tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    config = compose_ppo_config(REWARD_OVERRIDES + ["+reward.custom_reward_function.reward_kwargs.beta=0.5"])
    manager = load_reward_manager(config, tokenizer)
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": "Q"}], tokenize=False,
                                            add_generation_prompt=True)] * len(CASES)
    data = rollout_batch(tokenizer, prompts, [c[0] for c in CASES], _rows(CASES))
    for i, (_, _, _, acc, fmt) in enumerate(CASES):
        # The manager's own event loop, as verl's reward workers drive it.
        out = manager.loop.run_until_complete(manager.run_single(data[i : i + 1]))
        info = out["reward_extra_info"]
        assert set(info) == set(SCORE_KEYS)
        assert info["acc"] == acc and info["format"] == fmt, CASES[i][0]
        assert out["reward_score"] == pytest.approx(acc + 0.5 * fmt)


def test_reward_kwargs_select_variant(tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    config = compose_ppo_config(REWARD_OVERRIDES + ["+reward.custom_reward_function.reward_kwargs.variant=reference"])
    manager = load_reward_manager(config, tokenizer)
    case = CASES[1]  # "Very important." inside the tags: the release gives format credit only
    data = rollout_batch(tokenizer, ["Q"], [case[0]], _rows([case]))
    out = manager.loop.run_until_complete(manager.run_single(data[0:1]))
    assert out["reward_score"] == pytest.approx(0.8)


@pytest.mark.slow
def test_reward_loop_manager_on_local_ray(tokenizer, tiny_tokenizer_dir):
    config = compose_ppo_config(
        REWARD_OVERRIDES
        + [
            f"actor_rollout_ref.model.path={tiny_tokenizer_dir}",
            "reward.num_workers=2",
        ]
    )
    prompts = ["<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"] * len(CASES)
    data = rollout_batch(tokenizer, prompts, [c[0] for c in CASES], _rows(CASES))
    out = score_on_ray(config, data)
    scores = out.batch["rm_scores"].sum(dim=-1).tolist()
    expected = [acc + DEFAULT_BETA * fmt for *_, acc, fmt in CASES]
    assert scores == pytest.approx(expected)
    assert out.meta_info["reward_extra_keys"] == list(SCORE_KEYS)
    assert out.non_tensor_batch["acc"].tolist() == [c[3] for c in CASES]


# Thinking-mode completions (Qwen3 with thinking on), scored with format_tags=qwen3 and the default beta 0.4:
# (completion, ground truth, options, acc, format share, score worked by hand = acc + 0.4 * format)
THINKING = [
    ("<think>\nShe is devout.\n</think>\n\n<answer>Very important</answer>", "Very important", IMPORTANT,
     1.0, 1.0, 1.4),
    # A draft answer inside the thinking is not the answer; the reply states another without tags: think tags only.
    ("<think>\nDraft: <answer>Very important</answer>\n</think>\n\nNot very important, on reflection.",
     "Very important", IMPORTANT, 0.0, 0.5, 0.2),
    # Cut at max tokens inside the thinking: no answer, and only <think> present.
    ("<think>\nMaybe <answer>Agree</answer>, but let me check the", "Agree", AGREE4, 0.0, 0.25, 0.1),
    ("<think>\nHer views are liberal.\n</think>\n<answer>I don't agree</answer>", "Agree", AGREE4, 0.0, 1.0, 0.4),
    ("<think>\nr\n</think>\n<answer>\uff33\uff54\uff52\uff4f\uff4e\uff47\uff4c\uff59 \uff41\uff47\uff52\uff45\uff45</answer>",
     "Strongly agree", AGREE4, 1.0, 1.0, 1.4),  # full-width
    ("<think>\nr\n</think>\n<ANSWER>Agree strongly</ANSWER>", "Strongly agree", AGREE4, 1.0, 1.0, 1.4),
    ("<think>\nr\n</think>\n<answer>Agree</answer> (as the <answer></answer> tags ask)", "Agree", AGREE4,
     1.0, 1.0, 1.4),
    # The chat template opened the thinking: the completion starts inside it; <think> itself is absent.
    ("so the answer is <answer>Agree</answer>.\n</think>\n\n<answer>Disagree</answer>", "Disagree", AGREE4,
     1.0, 0.75, 1.3),
]


def test_reward_manager_on_thinking_completions(tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    config = compose_ppo_config(REWARD_OVERRIDES + ["+reward.custom_reward_function.reward_kwargs.format_tags=qwen3"])
    manager = load_reward_manager(config, tokenizer)
    cases = [(c, t, o, acc, fmt) for c, t, o, acc, fmt, _ in THINKING]
    data = rollout_batch(tokenizer, ["Q"] * len(cases), [c[0] for c in cases], _rows(cases))
    for i, (text, _, _, acc, fmt, expected) in enumerate(THINKING):
        out = manager.loop.run_until_complete(manager.run_single(data[i: i + 1]))
        info = out["reward_extra_info"]
        assert (info["acc"], info["format"]) == (acc, fmt), text
        assert out["reward_score"] == pytest.approx(expected), text
