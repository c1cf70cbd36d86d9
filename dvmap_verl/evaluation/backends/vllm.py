"""vLLM offline backend (GPU): ``LLM.chat`` over the whole request list, in chunks so results land as they finish."""

from __future__ import annotations

from typing import Sequence

from dvmap_verl.evaluation.backends import GenerationSettings, OnError, OnResult, Request


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, settings: GenerationSettings, tensor_parallel_size: int = 1, chunk: int = 4096):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:  # GPU-only dependency, installed with `pip install dvmap-verl[gpu]`
            raise ImportError("the vllm backend needs vLLM: pip install 'dvmap-verl[gpu]'") from e
        self.settings = settings
        self.chunk = chunk
        self.llm = LLM(model=model, tensor_parallel_size=tensor_parallel_size, seed=settings.seed, dtype="bfloat16")
        self.params = SamplingParams(n=1, temperature=settings.temperature, max_tokens=settings.max_tokens)

    def run(self, requests: Sequence[Request], on_result: OnResult, on_error: OnError) -> None:
        for start in range(0, len(requests), self.chunk):
            batch = requests[start:start + self.chunk]
            try:
                outputs = self.llm.chat([list(r.messages) for r in batch], self.params, use_tqdm=True,
                                        chat_template_kwargs=self.settings.chat_template_kwargs or None)
            except Exception as e:
                for r in batch:
                    on_error(r, e)
                continue
            for r, out in zip(batch, outputs):
                on_result(r, out.outputs[0].text)
