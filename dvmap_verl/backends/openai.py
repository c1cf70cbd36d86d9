"""Any OpenAI-compatible chat-completions server (vLLM serve, SGLang, hosted APIs): async, bounded concurrency,
retries with exponential backoff on 429/5xx, timeouts, dropped connections and malformed replies."""

from __future__ import annotations

import asyncio
import json
import os
import random
from typing import Any, Sequence

from dvmap_verl.backends import GenerationSettings, OnError, OnResult, Request

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class PermanentError(RuntimeError):
    """A reply that retrying cannot fix (4xx other than 408/409/425/429)."""


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, settings: GenerationSettings, base_url: str, api_key: str | None = None,
                 concurrency: int = 16, timeout: float = 120.0, max_retries: int = 6, backoff: float = 0.5):
        self.model = model
        self.settings = settings
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff

    def payload(self, r: Request) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {"model": self.model, "messages": list(r.messages), "temperature": s.temperature,
                                "max_tokens": s.max_tokens, "seed": s.seed * 1_000_003 + r.item * 101 + r.sample}
        if s.chat_template_kwargs:
            body["chat_template_kwargs"] = dict(s.chat_template_kwargs)  # vLLM / SGLang extension
        return body

    async def _one(self, session, r: Request) -> str:
        import aiohttp

        last: BaseException | None = None
        for attempt in range(self.max_retries + 1):
            try:
                async with session.post(self.url, json=self.payload(r)) as resp:
                    raw = await resp.text()
                    if resp.status in RETRY_STATUS:
                        raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=raw[:200])
                    if resp.status >= 400:
                        raise PermanentError(f"HTTP {resp.status} from {self.url}: {raw[:300]}")
                    data = json.loads(raw)
                    content = data["choices"][0]["message"]["content"]
                    return content if isinstance(content, str) else ""
            except PermanentError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError, KeyError, IndexError,
                    TypeError) as e:
                last = e
            if attempt < self.max_retries:
                delay = min(self.backoff * 2**attempt, 30.0)
                await asyncio.sleep(delay * (0.5 + random.random()))
        raise RuntimeError(f"request for item {r.item} sample {r.sample} failed after {self.max_retries + 1} "
                           f"attempts: {type(last).__name__}: {last}")

    async def _run(self, requests: Sequence[Request], on_result: OnResult, on_error: OnError) -> None:
        import aiohttp

        queue: asyncio.Queue = asyncio.Queue()
        for r in requests:
            queue.put_nowait(r)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as session:
            async def worker():  # a fixed pool of workers: memory stays flat for any number of requests
                while not queue.empty():
                    r = queue.get_nowait()
                    try:
                        on_result(r, await self._one(session, r))
                    except Exception as e:
                        on_error(r, e)

            await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(requests)))))

    def run(self, requests: Sequence[Request], on_result: OnResult, on_error: OnError) -> None:
        asyncio.run(self._run(requests, on_result, on_error))
