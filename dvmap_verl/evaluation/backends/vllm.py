"""vLLM offline backend (GPU): ``LLM.chat`` over the requests, in chunks so results land as they finish.

Settings that cost nothing to get right: all samples of one item go out as one prompt with ``n`` samples (the prompt
is prefilled once; each sample still becomes its own record), prefix caching is on (every prompt shares the long
template), and ``max_model_len`` is the data's longest prompt plus ``max_tokens`` instead of the model's 32k+
default (less KV-cache reserved per sequence, more sequences in flight).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from dvmap_verl.evaluation.backends import GenerationSettings, OnError, OnResult, Request

#: Prompts per ``LLM.chat`` call: big enough to keep the GPU busy, small enough that a kill loses seconds.
CHUNK_PROMPTS = 256


def max_model_len_for(model: str, conversations: Sequence[Sequence[dict]], chat_kwargs: dict, max_tokens: int) -> int:
    """The longest prompt of the data (chat template applied, as vLLM applies it) plus ``max_tokens``."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
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
            raise ImportError("the vllm backend needs vLLM: pip install 'dvmap-verl[gpu]'") from e
        self.settings = settings
        self.chunk = chunk
        self._params = SamplingParams
        kwargs = {"max_model_len": max_model_len} if max_model_len else {}
        self.llm = LLM(model=model, tensor_parallel_size=tensor_parallel_size, seed=settings.seed, dtype="bfloat16",
                       enable_prefix_caching=enable_prefix_caching, **kwargs)

    def sampling(self, item: int, n: int):
        s = self.settings
        return self._params(n=n, temperature=s.temperature, max_tokens=s.max_tokens,
                            seed=s.seed * 1_000_003 + item * 101)

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
                    on_result(r, sample.text)
