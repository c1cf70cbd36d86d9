"""A small OpenAI-compatible chat server on 127.0.0.1 that injects failures, for testing the openai backend.

It answers with the first option of the prompt's "**Options**:" line. Per request (keyed by the request's seed),
the first attempts can fail in one of four ways: HTTP 500, a slow reply (longer than the client's timeout),
malformed JSON, or a dropped connection.

``shape(seed, attempt, options)`` serves replies of other shapes: it returns a dict (a message, served in a
``chat.completion`` with ``finish_reason`` taken from its ``"finish_reason"`` key, default ``stop``), a
:class:`Body` (any JSON body with HTTP 200, error objects included), a ``str`` (raw text with HTTP 200, for
malformed bodies), or None for the normal reply.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

from aiohttp import web

FAILURES = ("http500", "slow", "malformed", "drop")


class Body(dict):
    """A whole reply body for ``shape`` to return as is (error objects, bodies without choices), with HTTP
    ``status`` (default 200)."""

    def __init__(self, *args, status: int = 200, **kwargs):
        super().__init__(*args, **kwargs)
        self.status = status


class FakeServer:
    def __init__(self, fail_every: int = 3, slow_seconds: float = 2.0, delay: float = 0.0, scorer=None, reply=None,
                 shape=None, hold_after: int | None = None):
        self.reply = reply  # options -> the assistant's content (default: names the first option)
        self.shape = shape  # (seed, attempt, options) -> message dict, Body, raw str, or None (see the module doc)
        self.scorer = scorer  # prompt -> (tokens, token_logprobs, text_offset): serves /v1/completions echo
        self.fail_every = fail_every
        self.slow_seconds = slow_seconds
        self.delay = delay
        # After this many requests, hold every further one until ``release`` is set: a client that must still be
        # running when the test acts (Ctrl-C) cannot finish first, however the machine schedules it.
        self.hold_after = hold_after
        self.release = threading.Event()
        self.attempts: Counter = Counter()
        self.served: Counter = Counter()
        self.bodies: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.port = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        app.router.add_post("/v1/completions", self.completions)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    async def handle(self, request: web.Request):
        body = await request.json()
        self.bodies.append(body)
        key = body.get("seed")
        self.attempts[key] += 1
        attempt = self.attempts[key]
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hold_after is not None and len(self.bodies) > self.hold_after:
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        if self.fail_every and key is not None and key % self.fail_every == 0 and attempt <= 2:
            mode = FAILURES[(key // self.fail_every + attempt) % len(FAILURES)]
            if mode == "http500":
                return web.Response(status=500, text="internal error")
            if mode == "slow":
                await asyncio.sleep(self.slow_seconds)
            elif mode == "malformed":
                return web.Response(text='{"choices": [{"message": ', content_type="application/json")
            elif mode == "drop":
                request.transport.close()
                return web.Response(status=200)
        user = body["messages"][-1]["content"]
        options = user.split("**Options**: ", 1)[1].split("\n", 1)[0].split(", ") if "**Options**: " in user else ["?"]
        shaped = self.shape(key, attempt, options) if self.shape else None
        if isinstance(shaped, Body):
            return web.json_response(dict(shaped), status=shaped.status)
        if isinstance(shaped, str):
            return web.Response(text=shaped, content_type="application/json")
        if isinstance(shaped, dict):
            message = {k: v for k, v in shaped.items() if k != "finish_reason"}
            self.served[key] += 1
            return web.json_response({"id": "x", "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", **message},
                 "finish_reason": shaped.get("finish_reason", "stop")}]})
        content = self.reply(options) if self.reply else \
            f"<reasoning>\nserved\n</reasoning>\n<answer>\n{options[0]}\n</answer>"
        self.served[key] += 1
        return web.json_response({"id": "x", "object": "chat.completion",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                               "finish_reason": "stop"}]})

    async def completions(self, request: web.Request):
        """``echo`` + ``logprobs`` as vLLM serves them: every prompt token with its log-probability (None for the
        first), its text offset, then one generated token."""
        body = await request.json()
        self.bodies.append(body)
        if self.scorer is None or not body.get("echo"):
            return web.json_response({"choices": [{"index": 0, "text": "x", "logprobs": None}]})
        tokens, values, offsets = self.scorer(body["prompt"])
        n = len(body["prompt"])
        logprobs = {"tokens": tokens + ["!"], "token_logprobs": values + [-0.5], "text_offset": offsets + [n],
                    "top_logprobs": None}
        return web.json_response({"choices": [{"index": 0, "text": body["prompt"] + "!", "logprobs": logprobs}]})
