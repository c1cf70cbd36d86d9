"""Evaluation runs never lose or mix finished work: torn or stray lines, resumes with other settings, two processes
on one folder, a server that is down, Ctrl-C. On synthetic data with the tiny local model (always runs)."""

from __future__ import annotations

import json
import signal
import threading
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvmap_verl.evaluation.backends import make_backend
from dvmap_verl.evaluation.evaluate import PREDICTIONS, REJECTED, EvalConfig, read_predictions, run_eval, scan_predictions
from dvmap_verl.evaluation.report import build_report
from fake_openai import FakeServer

CLI = [sys.executable, "-m", "dvmap_verl.cli"]


@pytest.fixture(scope="module")
def data(synthetic_data) -> Path:
    return synthetic_data(4000, seed=11)


def _config(data: Path, model: Path, **kw) -> EvalConfig:
    base = dict(backend="hf", model=str(model), data=[str(data / "cross_demographic.parquet")], samples=2, limit=20,
                max_tokens=6, temperature=0.0)
    return EvalConfig(**{**base, **kw})


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture()
def finished_run(data, tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    config = _config(data, tiny_model_dir)
    status = run_eval(make_backend("hf", str(tiny_model_dir), config.generation(), batch_size=8), run, config,
                      quiet=True)
    assert status["written"] == 40 and status["failed"] == 0
    return run, config


def test_a_bad_line_mid_file_loses_nothing_valid(finished_run, tiny_model_dir, capsys):
    run, config = finished_run
    path = run / PREDICTIONS
    lines = path.read_bytes().splitlines(keepends=True)
    torn = lines[15][: len(lines[15]) // 2] + b"\n"  # a torn write in the middle of the file
    corrupted = lines[:15] + [torn] + lines[16:30] + [b"[1, 2, 3]\n", lines[3], b"not json at all\n"] + lines[30:]
    path.write_bytes(b"".join(corrupted))

    # The report reads around the bad lines, says so, and never crashes on a non-object JSON line.
    report = build_report(run, bootstrap=0, importance=False)
    assert any("skipped 3 unreadable line(s)" in w and "1 repeated" in w for w in report["warnings"])
    assert "Warning." in (run / "report.md").read_text()

    again = run_eval(make_backend("hf", str(tiny_model_dir), config.generation(), batch_size=8), run, config)
    assert again["requested"] == 1 and again["written"] == 1  # only the torn pair is generated again
    assert again["set_aside"]["lines"] == [16, 31, 33, 32]
    err = capsys.readouterr().err
    assert "3 unreadable line(s) (line 16, 31, 33)" in err and REJECTED in err
    final_lines = path.read_bytes().splitlines(keepends=True)
    survivors = set(lines) - {lines[15]}
    assert survivors <= set(final_lines)  # every valid record kept, byte for byte
    assert len(final_lines) == 40 and set(final_lines) == set(lines)  # T = 0: the redone pair is identical
    assert (run / REJECTED).read_bytes() == torn + b"[1, 2, 3]\n" + lines[3] + b"not json at all\n"
    assert scan_predictions(path).skipped == 0


def test_resume_with_other_settings_is_refused_untouched(finished_run, data, tiny_model_dir):
    run, config = finished_run
    before = _files(run)
    res = subprocess.run(CLI + ["eval", "--backend", "hf", "--model", str(tiny_model_dir), "--data",
                                str(data / "cross_demographic.parquet"), "--out", str(run), "--samples", "2",
                                "--limit", "20", "--max-tokens", "6", "--temperature", "0.5"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert "holds a run with other settings" in res.stderr and "temperature: was 0.0, now 0.5" in res.stderr
    assert "Traceback" not in res.stderr
    assert _files(run) == before  # run.json, predictions, items: byte for byte
    other = _config(data, Path(str(tiny_model_dir) + "_other"), samples=3)
    with pytest.raises(ValueError, match=r"model: .*_other'; samples: was 2, now 3"):
        run_eval(make_backend("hf", str(tiny_model_dir), config.generation()), run, other, quiet=True)
    assert _files(run) == before


def test_a_second_process_on_the_folder_is_refused(finished_run, data, tiny_model_dir):
    run, _ = finished_run
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from dvmap_verl.evaluation.evaluate import run_lock
with run_lock({str(run)!r}):
    print("held", flush=True)
    time.sleep(120)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = subprocess.run(CLI + ["eval", "--backend", "hf", "--model", str(tiny_model_dir), "--data",
                                    str(data / "cross_demographic.parquet"), "--out", str(run), "--samples", "2",
                                    "--limit", "20", "--max-tokens", "6", "--temperature", "0"],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 2 and "another dvmap process is using this run folder" in res.stderr
        assert len(read_predictions(run / PREDICTIONS)) == 40 == len((run / PREDICTIONS).read_bytes().splitlines())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel released the killed holder's lock: the folder is usable again.
    from dvmap_verl.evaluation.evaluate import run_lock

    with run_lock(run):
        pass


@pytest.mark.parametrize("flag, value", [("--samples", "0"), ("--limit", "0"), ("--samples", "-2"),
                                         ("--max-tokens", "0")])
def test_zero_or_negative_counts_are_usage_errors(flag, value, tmp_path):
    res = subprocess.run(CLI + ["eval", "--backend", "hf", "--model", "m", "--data", "x.parquet", "--out",
                                str(tmp_path / "r"), flag, value], capture_output=True, text=True)
    assert res.returncode == 2 and f"argument {flag}: must be at least 1" in res.stderr
    assert not (tmp_path / "r").exists()


def test_report_says_on_the_console_when_a_run_is_partial(finished_run):
    run, _ = finished_run
    lines = (run / PREDICTIONS).read_bytes().splitlines(keepends=True)
    (run / PREDICTIONS).write_bytes(b"".join(lines[:10]))
    res = subprocess.run(CLI + ["report", str(run), "--bootstrap", "0"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "NOTE: partial run: 10 of 40 (item, sample) pairs have a prediction" in res.stdout


def test_openai_server_down_fails_fast_with_one_line(data, tmp_path):
    t0 = time.perf_counter()
    res = subprocess.run(CLI + ["eval", "--backend", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
                                "--data", str(data / "val.parquet"), "--out", str(tmp_path / "r"), "--limit", "50",
                                "--quiet"], capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - t0 < 30  # the interpreter's start included; no minutes of retries
    assert res.returncode == 2 and "Traceback" not in res.stderr
    errors = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and "cannot connect to http://127.0.0.1:9/v1" in errors[0]


def test_a_server_that_dies_mid_run_fails_the_rest_at_once(data, tmp_path, monkeypatch):
    """Items 0-9 are served; then the server dies (nothing listens any more). Each remaining request is attempted
    exactly once, refused, and recorded as failed: no retries against a dead server, and no request skipped
    untried (one that comes back would be used again)."""
    import aiohttp

    config = EvalConfig(backend="openai", model="fake", data=[str(data / "val.parquet")], limit=40)
    dead = "http://127.0.0.1:9/v1/chat/completions"
    posts: dict[str, list[int]] = {"live": [], "dead": []}
    post = aiohttp.ClientSession.post

    def counting_post(session, url, **kw):  # every attempt, by where it went and which item it was for
        posts["dead" if str(url) == dead else "live"].append(kw["json"]["seed"] // 101)
        return post(session, url, **kw)

    monkeypatch.setattr(aiohttp.ClientSession, "post", counting_post)
    with FakeServer(fail_every=0) as server:
        backend = make_backend("openai", "fake", config.generation(), base_url=server.base_url, concurrency=1,
                               timeout=2.0, max_retries=3)
        backend.backoff = 0.01
        original = backend._one

        async def dying(session, r):
            if r.item == 10:
                server.loop.call_soon_threadsafe(server.loop.stop)  # the server goes away
                backend.url = dead
            return await original(session, r)

        backend._one = dying
        t0 = time.perf_counter()
        status = run_eval(backend, tmp_path / "run", config, quiet=True)
    assert time.perf_counter() - t0 < 30
    assert posts == {"live": list(range(10)), "dead": list(range(10, 40))}  # each request exactly once
    assert status["written"] == 10 and status["failed"] == 30
    assert all("stopped accepting connections" in e for e in status["errors"])
    assert sorted(json.loads(l)["item"] for l in (tmp_path / "run" / PREDICTIONS).read_text().splitlines()) == \
        list(range(10))


def test_ctrl_c_stops_cleanly_and_the_rerun_resumes(data, tmp_path):
    run = tmp_path / "run"
    args = CLI + ["eval", "--backend", "openai", "--model", "fake", "--data", str(data / "val.parquet"), "--out",
                  str(run), "--limit", "30", "--concurrency", "1", "--no-report", "--quiet"]
    # The server answers 8 requests, then holds the rest until released: the run is still going when SIGINT comes,
    # however slowly a busy machine runs this test (a timing margin alone flaked under load).
    with FakeServer(fail_every=0, hold_after=8) as server:
        # The child gets SIGINT's default disposition, as from a terminal: an ignored SIGINT is inherited across
        # exec, and an earlier test of the suite (Ray's driver) can leave this pytest process ignoring it.
        proc = subprocess.Popen(args + ["--base-url", server.base_url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 120
        while time.time() < deadline:
            if (run / PREDICTIONS).exists() and (run / PREDICTIONS).read_bytes().count(b"\n") >= 5:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        # The interrupted run waits for its one request in flight (held by the server) before it exits: let it go.
        threading.Timer(1.0, server.release.set).start()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert "Traceback" not in err and "interrupted; finished work is saved" in err
        done = len(read_predictions(run / PREDICTIONS))
        assert 5 <= done < 30
        res = subprocess.run(args + ["--base-url", server.base_url], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    final = (run / PREDICTIONS).read_bytes().splitlines()
    assert len(final) == 30 == len({(json.loads(l)["item"], json.loads(l)["sample"]) for l in final})
