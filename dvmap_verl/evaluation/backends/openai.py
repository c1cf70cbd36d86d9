"""Any OpenAI-compatible chat-completions server (vLLM serve, SGLang, hosted APIs): async, bounded concurrency,
retries with exponential backoff on 429/5xx, timeouts, dropped connections and malformed replies."""

from __future__ import annotations

import asyncio
import json
import os
import random
from typing import Any, Sequence

from dvmap_verl.evaluation.backends import GenerationSettings, OnError, OnResult, Request
from dvmap_verl.evaluation.readouts import OnScore, ScoreRequest, Scores

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class PermanentError(RuntimeError):
    """A reply that retrying cannot fix (4xx other than 408/409/425/429)."""


class ServerUnreachableError(ConnectionError):
    """Nothing listens at the base URL (connection refused, unknown host): retrying will not help."""


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, settings: GenerationSettings, base_url: str, api_key: str | None = None,
                 concurrency: int = 16, timeout: float = 120.0, max_retries: int = 6, backoff: float = 0.5,
                 tokenizer: str | None = None):
        self.model = model
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._down: str | None = None  # set once a request ends on a refused connection: fail the rest at once
        self.tokenizer_name = tokenizer or model
        self._tokenizer = None

    def payload(self, r: Request) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {"model": self.model, "messages": list(r.messages), "temperature": s.temperature,
                                "max_tokens": s.max_tokens, "seed": s.seed * 1_000_003 + r.item * 101 + r.sample}
        if s.stop:
            body["stop"] = list(s.stop)
        if s.chat_template_kwargs:
            body["chat_template_kwargs"] = dict(s.chat_template_kwargs)  # vLLM / SGLang extension
        return body

    async def _one(self, session, r: Request) -> str:
        data = await self._post(session, self.url, self.payload(r), f"item {r.item} sample {r.sample}")
        content = data["choices"][0]["message"]["content"]
        return content if isinstance(content, str) else ""

    async def _post(self, session, url: str, body: dict[str, Any], label: str) -> dict[str, Any]:
        """POST with retries; returns the parsed reply (a reply without ``choices`` counts as malformed)."""
        import aiohttp

        last: BaseException | None = None
        for attempt in range(self.max_retries + 1):
            if self._down:
                raise ServerUnreachableError(self._down)
            try:
                async with session.post(url, json=body) as resp:
                    raw = await resp.text()
                    if resp.status in RETRY_STATUS:
                        raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=raw[:200])
                    if resp.status >= 400:
                        raise PermanentError(f"HTTP {resp.status} from {url}: {raw[:300]}")
                    data = json.loads(raw)
                    data["choices"][0]  # noqa: B018 - a reply without choices is malformed: retry
                    return data
            except PermanentError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError, KeyError, IndexError,
                    TypeError) as e:
                last = e
            if attempt < self.max_retries:
                delay = min(self.backoff * 2**attempt, 30.0)
                await asyncio.sleep(delay * (0.5 + random.random()))
        if isinstance(last, aiohttp.ClientConnectorError):
            self._down = f"{self.base_url} stopped accepting connections ({last}); rerun when it is back"
        raise RuntimeError(f"request for {label} failed after {self.max_retries + 1} attempts: "
                           f"{type(last).__name__}: {last}")

    # -- option scoring (readouts) ------------------------------------------------------------------------------

    def _chat_text(self, messages) -> str:
        """The prompt as the server's model sees it: the chat template applied here (``/completions`` takes text)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name)
            except Exception as e:
                raise ValueError(f"the logprob readout over an OpenAI server renders the chat template locally and "
                                 f"could not load a tokenizer from {self.tokenizer_name!r} ({e}); pass --tokenizer "
                                 f"PATH_OR_NAME") from None
        return self._tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True,
                                                   **self.settings.chat_template_kwargs)

    async def _score_one(self, session, r: ScoreRequest) -> Scores:
        """Every continuation through ``/completions`` with ``echo`` and ``logprobs``: the server's own
        tokenisation of the full text and each prompt token's log-probability. Tokens identical across all
        continuations and ending inside the prompt are the shared context; the rest is scored."""
        prompt = self._chat_text(r.messages) + r.prefix
        spans = []
        for c in r.continuations:
            body = {"model": self.model, "prompt": prompt + c, "max_tokens": 1, "temperature": 0.0, "echo": True,
                    "logprobs": 0}
            data = await self._post(session, self.base_url + "/completions", body, f"item {r.item} (logprobs)")
            lp = data["choices"][0].get("logprobs") or {}
            tokens, values, offsets = lp.get("tokens"), lp.get("token_logprobs"), lp.get("text_offset")
            if not (isinstance(tokens, list) and isinstance(values, list) and isinstance(offsets, list)):
                raise PermanentError(f"{self.base_url}/completions returned no prompt logprobs (echo + logprobs); "
                                     f"the logprob readout needs a server that does (vLLM, SGLang)")
            end = len(prompt) + len(c)
            spans.append([(o, t, v) for o, t, v in zip(offsets, tokens, values) if o < end])  # drop the generated
        start = 0
        while all(start < len(sp) for sp in spans) and len({sp[start][:2] for sp in spans}) == 1 \
                and all(sp[start][0] + len(sp[start][1]) <= len(prompt) for sp in spans):
            start += 1
        if start == 0:
            raise ValueError("nothing precedes the scored text")
        sums = tuple(float(sum(v for _, _, v in sp[start:])) for sp in spans)
        return Scores(sums, tuple(len(sp) - start for sp in spans))

    def score(self, requests: Sequence[ScoreRequest], on_result: OnScore, on_error: OnError) -> None:
        asyncio.run(self._run(requests, on_result, on_error, self._score_one))

    async def _preflight(self, session) -> None:
        """Fail in a second, not after minutes of retries, when nothing listens at the base URL."""
        import aiohttp

        try:
            async with session.get(self.base_url + "/models",
                                   timeout=aiohttp.ClientTimeout(total=min(self.timeout, 10.0))) as resp:
                await resp.read()
        except aiohttp.ClientConnectorError as e:
            raise ServerUnreachableError(f"cannot connect to {self.base_url} ({e.os_error or e}); is the server "
                                         f"running and --base-url right?") from None
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass  # something answers (or is slow): the requests' own retries decide

    async def _run(self, requests: Sequence, on_result, on_error: OnError, one=None) -> None:
        import aiohttp

        queue: asyncio.Queue = asyncio.Queue()
        for r in requests:
            queue.put_nowait(r)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as session:
            if requests:
                await self._preflight(session)

            async def worker():  # a fixed pool of workers: memory stays flat for any number of requests
                while not queue.empty():
                    r = queue.get_nowait()
                    try:
                        on_result(r, await (one or self._one)(session, r))
                    except Exception as e:
                        on_error(r, e)

            await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(requests)))))

    def run(self, requests: Sequence[Request], on_result: OnResult, on_error: OnError) -> None:
        asyncio.run(self._run(requests, on_result, on_error))
