"""Tiny tokenizer and model built locally, for tests and the CPU demo (no hub downloads on these machines).

The tokenizer is a byte-level BPE trained on the fly with a Qwen-style chat template (``enable_thinking`` honoured);
the model is a randomly initialised Qwen2-architecture causal LM of a few hundred thousand parameters. Neither knows
anything: they exercise the plumbing, not quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_SEED_TEXT = [
    "<reasoning>\nThe character's religion and income shape the answer.\n</reasoning>\n<answer>\nVery important\n</answer>",
    "Very important, Rather important, Not very important, Not at all important",
    "Strongly agree, Agree, Disagree, Strongly disagree; Agree strongly, Neither agree nor disagree, Disagree strongly",
    "Very happy, Rather happy, Not very happy, Not at all happy; Low, Medium, High",
    "Trust completely, Trust somewhat, Do not trust very much, Do not trust at all",
    "A great deal, Quite a lot, Not very much, None at all; Very secure, Quite secure, Not very secure",
    "You are playing the role of a Young Adulthood Female from Germany. Your income level is 'Middle income'.",
    "Respond in the following format: <think> </think> Question Options system user assistant",
]


def build_tokenizer(out_dir: str | Path, extra_text: Iterable[str] = (), vocab_size: int = 600):
    """Train a byte-level BPE tokenizer and save it as a Hugging Face tokenizer directory; returns the tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(_SEED_TEXT) + list(extra_text), trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
    )
    hf.chat_template = CHAT_TEMPLATE
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out))
    return hf


def build_model(out_dir: str | Path, tokenizer=None, seed: int = 0, hidden_size: int = 32, heads: int = 4):
    """A randomly initialised tiny Qwen2 causal LM saved beside the tokenizer (the directory loads with from_pretrained).

    The default (head size 8) is the smallest that runs on a CPU; GPU attention kernels (vLLM, flash-attn) want a
    head size of 64 or more: ``hidden_size=256, heads=4`` (``python -m dvmap_verl.training.tiny --gpu``)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(str(out))
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=max(heads // 2, 1),
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out))
    return model


def teach_fixed_reply(model_dir: str | Path, reply: str, prompts: list[list[dict]] | None = None, steps: int = 150,
                      lr: float = 3e-3, seed: int = 0) -> None:
    """Overfit the tiny model to answer chat prompts with ``reply``, so that decoding then parses for real.

    The loss covers the reply only, after each prompt's assistant header; train on prompts like the ones it will
    see (a tiny model does not generalise across prompt lengths). A minute or less on CPU.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    reply_ids = tok(reply, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    batch = []
    for messages in prompts or [[{"role": "user", "content": "Q"}]]:
        header = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
        prompt_ids = tok(header, add_special_tokens=False)["input_ids"]
        batch.append((prompt_ids + reply_ids, len(prompt_ids)))
    width = max(len(ids) for ids, _ in batch)
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (width - len(x)) + x for x, _ in batch])  # left padding, as in generation
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x, _ in batch])
    labels = ids.clone()
    for row, (x, n_prompt) in enumerate(batch):
        labels[row, : width - len(x) + n_prompt] = -100
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(str(model_dir))


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dvmap_verl.training.tiny", description="Build the tiny local model (offline).")
    ap.add_argument("out", type=Path, help="folder for the tokenizer, config and weights")
    ap.add_argument("--gpu", action="store_true", help="head size 64, which GPU attention kernels (vLLM) accept")
    ap.add_argument("--seed", type=int, default=0, help="initialisation seed")
    args = ap.parse_args(argv)
    tok = build_tokenizer(args.out)
    build_model(args.out, tok, seed=args.seed, **({"hidden_size": 256, "heads": 4} if args.gpu else {}))
    print(f"tiny model -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
