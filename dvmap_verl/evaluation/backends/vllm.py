"""vLLM offline backend (GPU): ``LLM.chat`` over the requests, in chunks so results land as they finish.

Settings that cost nothing to get right: all samples of one item go out as one prompt with ``n`` samples (the prompt
is prefilled once; each sample still becomes its own record), prefix caching is on (every prompt shares the long
template), and ``max_model_len`` is the data's longest prompt plus ``max_tokens`` instead of the model's 32k+
default (less KV-cache reserved per sequence, more sequences in flight).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from dvmap_verl.evaluation.backends import GenerationSettings, OnError, OnResult, Reply, Request
from dvmap_verl.evaluation.readouts import OnScore, ScoreRequest, Scores, scoring_start
from dvmap_verl.errors import InputError, MissingPackage

#: Prompts per ``LLM.chat`` call: big enough to keep the GPU busy, small enough that a kill loses seconds.
CHUNK_PROMPTS = 256


def max_model_len_for(model: str, conversations: Sequence[Sequence[dict]], chat_kwargs: dict, max_tokens: int) -> int:
    """The longest prompt of the data (chat template applied, as vLLM applies it) plus ``max_tokens``."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as e:  # no such repo or folder, no network, not a model folder
        raise InputError(f"--model {model}: cannot load its tokenizer ({e})") from e
    texts = [tok.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True, **chat_kwargs)
             for c in conversations]
    return max(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]) + max_tokens


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, settings: GenerationSettings, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, chunk: int = CHUNK_PROMPTS, enable_prefix_caching: bool = True):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:  # GPU-only dependency, installed with `pip install dvmap-verl[gpu]`
            raise MissingPackage("the vllm backend needs vLLM: pip install 'dvmap-verl[gpu]'") from e
        self.settings = settings
        self.chunk = chunk
        self._params = SamplingParams
        kwargs = {"max_model_len": max_model_len} if max_model_len else {}
        self.llm = LLM(model=model, tensor_parallel_size=tensor_parallel_size, seed=settings.seed, dtype="bfloat16",
                       enable_prefix_caching=enable_prefix_caching, **kwargs)

    def sampling(self, item: int, n: int):
        s = self.settings
        return self._params(n=n, temperature=s.temperature, max_tokens=s.max_tokens,
                            seed=s.seed * 1_000_003 + item * 101, stop=list(s.stop) or None,
                            include_stop_str_in_output=bool(s.stop))

    def run(self, requests: Sequence[Request], on_result: OnResult, on_error: OnError) -> None:
        by_item: dict[int, list[Request]] = defaultdict(list)
        for r in requests:
            by_item[r.item].append(r)
        groups = list(by_item.values())
        for start in range(0, len(groups), self.chunk):
            batch = groups[start:start + self.chunk]
            try:
                outputs = self.llm.chat([list(g[0].messages) for g in batch],
                                        [self.sampling(g[0].item, len(g)) for g in batch], use_tqdm=False,
                                        chat_template_kwargs=self.settings.chat_template_kwargs or None)
            except Exception as e:
                for g in batch:
                    for r in g:
                        on_error(r, e)
                continue
            for g, out in zip(batch, outputs):
                for r, sample in zip(g, out.outputs):
                    reason = getattr(sample, "finish_reason", None)  # "stop", "length" or "abort"
                    on_result(r, Reply(sample.text or "", finish_reason=str(reason) if reason is not None else None))

    def score(self, requests: Sequence[ScoreRequest], on_result: OnScore, on_error: OnError) -> None:
        """Every continuation's full token sequence as one prompt with ``prompt_logprobs=0`` (the log-probability
        of each actual prompt token) and one generated token that is thrown away.

        Cost: vLLM recomputes the prompt of a request that asks for prompt logprobs (its prefix cache serves only
        generation), so an item costs one prefill per option and no decoding at all."""
        from vllm.inputs import TokensPrompt

        tok = self.llm.get_tokenizer()
        params = self._params(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        for start in range(0, len(requests), self.chunk):
            batch, prompts, plans = [], [], []
            for r in requests[start:start + self.chunk]:
                try:
                    text = tok.apply_chat_template(list(r.messages), tokenize=False, add_generation_prompt=True,
                                                   **self.settings.chat_template_kwargs) + r.prefix
                    prefix_ids = tok(text, add_special_tokens=False)["input_ids"]
                    fulls = [tok(text + c, add_special_tokens=False)["input_ids"] for c in r.continuations]
                    plans.append((r, scoring_start(prefix_ids, fulls), fulls, len(prompts)))
                except Exception as e:
                    on_error(r, e)
                    continue
                prompts.extend(TokensPrompt(prompt_token_ids=f) for f in fulls)
                batch.append(r)
            if not prompts:
                continue
            try:
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
            except Exception as e:
                for r in batch:
                    on_error(r, e)
                continue
            for r, begin, fulls, at in plans:
                sums = []
                for j, full in enumerate(fulls):
                    per_token = outputs[at + j].prompt_logprobs
                    sums.append(float(sum(per_token[t][full[t]].logprob for t in range(begin, len(full)))))
                on_result(r, Scores(tuple(sums), tuple(len(f) - begin for f in fulls)))
