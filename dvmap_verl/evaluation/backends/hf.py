"""Hugging Face transformers backend (CPU or one GPU): small models, tests and the demo."""

from __future__ import annotations

from typing import Sequence

from dvmap_verl.evaluation.backends import GenerationSettings, OnError, OnResult, Request


class HFBackend:
    name = "hf"

    def __init__(self, model: str, settings: GenerationSettings, batch_size: int = 8):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings = settings
        self.batch_size = max(1, batch_size)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model)
        self.model.eval()
        self._torch = torch

    def _prompt(self, request: Request) -> str:
        return self.tokenizer.apply_chat_template(list(request.messages), tokenize=False, add_generation_prompt=True,
                                                  **self.settings.chat_template_kwargs)

    def run(self, requests: Sequence[Request], on_result: OnResult, on_error: OnError) -> None:
        torch, s = self._torch, self.settings
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start:start + self.batch_size]
            try:
                enc = self.tokenizer([self._prompt(r) for r in batch], return_tensors="pt", padding=True,
                                     add_special_tokens=False)
                # Seeded per batch position, so a resumed run draws the same samples.
                torch.manual_seed(s.seed * 1_000_003 + batch[0].item * 101 + batch[0].sample)
                with torch.no_grad():
                    out = self.model.generate(
                        **enc, max_new_tokens=s.max_tokens, do_sample=s.temperature > 0,
                        temperature=s.temperature if s.temperature > 0 else None, top_p=1.0,
                        pad_token_id=self.tokenizer.pad_token_id)
                texts = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            except Exception as e:  # one failed batch must not lose the others
                for r in batch:
                    on_error(r, e)
                continue
            for r, text in zip(batch, texts):
                on_result(r, text)
