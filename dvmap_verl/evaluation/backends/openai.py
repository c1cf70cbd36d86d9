"""Any OpenAI-compatible chat-completions server (vLLM serve, SGLang, hosted APIs): async, bounded concurrency,
retries with exponential backoff on 429/5xx, timeouts, dropped connections, error objects sent with HTTP 200 and
malformed replies.

Replies of every shape are read (:func:`parse_chat_reply`): ``message.content`` as a string or as a list of parts
(Mistral; text parts joined, other parts counted), ``content: null`` with the reasoning in ``reasoning_content`` or
``reasoning`` (vLLM's and SGLang's reasoning parsers), tool-call-only replies, and ``finish_reason``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from typing import Any, Callable, Sequence

from dvmap_verl.evaluation.backends import GenerationSettings, OnError, OnResult, Reply, Request, reply_kind
from dvmap_verl.evaluation.readouts import OnScore, ScoreRequest, Scores
from dvmap_verl.errors import EnvironmentProblem, InputError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

#: Content-part types whose ``text`` is the reply's text (chat-completions ``text``; Responses-style ``output_text``).
TEXT_PARTS = ("text", "output_text")


class PermanentError(RuntimeError):
    """A reply that retrying cannot fix (4xx other than 408/409/425/429)."""


class ServerUnreachableError(EnvironmentProblem, ConnectionError):
    """Nothing listens at the base URL (connection refused, unknown host): retrying will not help."""


class BadReplyError(ValueError):
    """An HTTP 2xx reply that holds no completion: the server's error object (``{"object": "error", "message":
    ...}``, ``{"error": {...}}``) or a malformed body (not JSON, no ``choices``). Retried; the message says what the
    server sent."""


def server_error_message(data: Any) -> str | None:
    """The server's own message when ``data`` is an error object (vLLM's ``{"object": "error", "message": ...}`` or
    OpenAI's ``{"error": {"message": ..., "type": ..., "code": ...}}``); None when it is not one."""
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if data.get("object") == "error":
        err = data
    if not err:
        return None
    if not isinstance(err, dict):
        return str(err)
    message = err.get("message") or json.dumps(err, ensure_ascii=False)[:300]
    extra = ", ".join(f"{k} {err[k]}" for k in ("type", "code") if err.get(k) not in (None, ""))
    return f"{message} ({extra})" if extra else str(message)


def parse_body(raw: str) -> dict[str, Any]:
    """The JSON reply with at least one choice (a dict); :class:`BadReplyError` naming what came instead."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadReplyError(f"reply is not JSON ({e}): {raw[:200]!r}") from None
    message = server_error_message(data)
    if message is not None:
        raise BadReplyError(f"server error: {message}")
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        what = "empty choices" if isinstance(choices, list) else "no choices"
        raise BadReplyError(f"malformed reply ({what}): {raw[:200]!r}")
    if not isinstance(choices[0], dict):
        raise BadReplyError(f"malformed reply (choice is not an object): {raw[:200]!r}")
    return data


def join_parts(content: Any) -> tuple[str, str, int]:
    """``message.content`` as ``(text, reasoning, dropped)``: a string as is; a list of parts with its text parts
    joined, ``thinking`` parts (Magistral) as reasoning, and every other part (image, audio, refusal) counted in
    ``dropped``; None as nothing. Anything else is one dropped part."""
    if content is None:
        return "", "", 0
    if isinstance(content, str):
        return content, "", 0
    if not isinstance(content, list):
        return "", "", 1
    text, reasoning, dropped = [], [], 0
    for part in content:
        if isinstance(part, str):
            text.append(part)
        elif isinstance(part, dict) and part.get("type") in TEXT_PARTS and isinstance(part.get("text"), str):
            text.append(part["text"])
        elif isinstance(part, dict) and part.get("type") == "thinking":
            inner, inner_reasoning, inner_dropped = join_parts(part.get("thinking"))
            reasoning.append(inner_reasoning + inner)
            dropped += inner_dropped
        else:
            dropped += 1
    return "".join(text), "".join(reasoning), dropped


def parse_chat_reply(raw: str) -> Reply:
    """A chat-completions reply body as a :class:`Reply`; :class:`BadReplyError` when it holds no completion."""
    choice = parse_body(raw)["choices"][0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise BadReplyError(f"malformed reply (choice without a message): {raw[:200]!r}")
    text, part_reasoning, dropped = join_parts(message.get("content"))
    said: list[str] = []
    for key in ("reasoning_content", "reasoning"):  # vLLM < 0.10 and SGLang; vLLM >= 0.10 and OpenRouter
        r_text, r_inner, _ = join_parts(message.get(key))
        if r_inner + r_text not in said:  # servers that send both send the same text twice
            said.append(r_inner + r_text)
    reasoning = "\n".join(x for x in [*said, part_reasoning] if x) or None
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        dropped += 1  # a refusal is not an answer; counted, never passed off as text
    tools = bool(message.get("tool_calls") or message.get("function_call"))
    finish = choice.get("finish_reason")
    return Reply(text, reasoning, finish if isinstance(finish, str) else None, reply_kind(text, reasoning, tools),
                 dropped)


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
        # Set when a connection is refused: from then on each request gets one attempt, no retries, until one
        # gets through (so a dead server fails the rest at once, and one that comes back is used again).
        self._down: str | None = None
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

    async def _one(self, session, r: Request) -> Reply:
        return await self._post(session, self.url, self.payload(r), f"item {r.item} sample {r.sample}",
                                parse_chat_reply)

    async def _post(self, session, url: str, body: dict[str, Any], label: str,
                    parse: Callable[[str], Any] = parse_body) -> Any:
        """POST with retries; returns ``parse(reply text)``. Retried: 408/409/425/429/5xx, timeouts, dropped
        connections, and replies ``parse`` rejects (error objects, malformed bodies). Not retried: other 4xx
        (:class:`PermanentError`) and a refused connection (:class:`ServerUnreachableError`)."""
        import aiohttp

        last: BaseException | None = None
        attempts = 0
        for attempt in range(self.max_retries + 1):
            if self._down and attempt > 0:  # the server went away while this request was being retried
                raise ServerUnreachableError(f"{self._down}; this request's last attempt: {type(last).__name__}: "
                                             f"{last}")
            attempts += 1
            try:
                async with session.post(url, json=body) as resp:
                    raw = await resp.text()
                    if resp.status in RETRY_STATUS:
                        raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=raw[:200])
                    if resp.status >= 400:
                        raise PermanentError(f"HTTP {resp.status} from {url}: {_error_text(raw)}")
                    result = parse(raw)
                    self._down = None
                    return result
            except PermanentError:
                raise
            except aiohttp.ClientConnectorError as e:
                self._down = f"{self.base_url} stopped accepting connections ({e}); rerun when it is back"
                raise ServerUnreachableError(self._down) from None
            except (aiohttp.ClientError, asyncio.TimeoutError, BadReplyError) as e:
                last = e
            if attempt < self.max_retries and not self._down:
                delay = min(self.backoff * 2**attempt, 30.0)
                await asyncio.sleep(delay * (0.5 + random.random()))
        raise RuntimeError(f"request for {label} failed after {attempts} attempt(s): {type(last).__name__}: {last}")

    # -- option scoring (readouts) ------------------------------------------------------------------------------

    def _chat_text(self, messages) -> str:
        """The prompt as the server's model sees it: the chat template applied here (``/completions`` takes text)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name)
            except Exception as e:
                raise InputError(f"the logprob readout over an OpenAI server renders the chat template locally and "
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


def _error_text(raw: str) -> str:
    """A 4xx body as the server's own message when it is an error object, else its first 300 characters."""
    try:
        message = server_error_message(json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError):
        message = None
    return message or raw[:300]
