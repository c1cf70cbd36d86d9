"""Hugging Face transformers backend (CPU or one GPU): small models, tests and the demo."""

from __future__ import annotations

from typing import Sequence

from dvmap_verl.evaluation.backends import GenerationSettings, OnError, OnResult, Reply, Request, cut_at_stop
from dvmap_verl.evaluation.readouts import OnScore, ScoreRequest, Scores, scoring_start
from dvmap_verl.errors import InputError


class HFBackend:
    name = "hf"

    def __init__(self, model: str, settings: GenerationSettings, batch_size: int = 8):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings = settings
        self.batch_size = max(1, batch_size)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(model)
        except (OSError, ValueError) as e:  # no such repo or folder, no network, not a model folder
            raise InputError(f"--model {model}: cannot load it with transformers ({e})") from e
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
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
                generated = out[:, enc["input_ids"].shape[1]:]
                texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
                reasons = self._finish_reasons(generated)
            except Exception as e:  # one failed batch must not lose the others
                for r in batch:
                    on_error(r, e)
                continue
            for r, text, reason in zip(batch, texts, reasons):
                if any(stop and stop in text for stop in s.stop):
                    reason = "stop"
                on_result(r, Reply(cut_at_stop(text, s.stop), finish_reason=reason))

    def _finish_reasons(self, generated) -> list[str]:
        """Per row of ``generated`` (batch, new tokens): ``stop`` when it holds an end-of-sequence token,
        ``length`` when it ran to ``max_new_tokens`` without one (what vLLM and OpenAI servers report)."""
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        eos_ids = self._torch.tensor([eos] if isinstance(eos, int) else list(eos or []), dtype=generated.dtype)
        ended = self._torch.isin(generated.cpu(), eos_ids).any(dim=1).tolist()
        full = generated.shape[1] >= self.settings.max_tokens
        return ["stop" if e or not full else "length" for e in ended]

    def score(self, requests: Sequence[ScoreRequest], on_result: OnScore, on_error: OnError) -> None:
        """Per request: one forward over the shared prefix (its KV cache kept), then one batched forward of every
        continuation's remaining tokens on copies of that cache. See :mod:`dvmap_verl.evaluation.readouts`."""
        for r in requests:
            try:
                scores = self._score_one(r)
            except Exception as e:
                on_error(r, e)
                continue
            on_result(r, scores)

    def _score_one(self, r: ScoreRequest) -> Scores:
        torch, tok = self._torch, self.tokenizer
        prompt = self._prompt(r) + r.prefix
        prefix_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        fulls = [tok(prompt + c, add_special_tokens=False)["input_ids"] for c in r.continuations]
        start = scoring_start(prefix_ids, fulls)
        tails = [f[start:] for f in fulls]
        width = max(len(t) for t in tails)
        k = len(tails)
        device = self.model.device
        with torch.no_grad():
            head = self.model(input_ids=torch.tensor([fulls[0][:start]], device=device), use_cache=True)
            first = head.logits[0, -1].float().log_softmax(-1)  # predicts every continuation's first token
            ids = torch.full((k, max(width, 1)), tok.pad_token_id, dtype=torch.long, device=device)
            mask = torch.zeros((k, max(width, 1)), dtype=torch.long, device=device)
            for i, t in enumerate(tails):
                ids[i, :len(t)] = torch.tensor(t, dtype=torch.long)
                mask[i, :len(t)] = 1
            token_lp = first[ids[:, :1]]  # (k, 1)
            if width > 1:
                cache = head.past_key_values
                cache.batch_repeat_interleave(k)
                attention = torch.cat([torch.ones((k, start), dtype=torch.long, device=device), mask[:, :-1]], 1)
                rest = self.model(input_ids=ids[:, :-1], attention_mask=attention, past_key_values=cache,
                                  use_cache=False).logits.float().log_softmax(-1)
                token_lp = torch.cat([token_lp, rest.gather(-1, ids[:, 1:, None]).squeeze(-1)], 1)
            sums = (token_lp * mask).sum(1)
        return Scores(tuple(float(x) for x in sums), tuple(len(t) for t in tails))
