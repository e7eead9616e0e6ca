"""serve-teacher's batch APIs through the real SDKs on loopback: the OpenAI
Batch API (files + batches) and the Anthropic Message Batches API, their
items answered as live requests are, with seeded faults, expiry, cancelling,
validation, the token and /stats."""

from __future__ import annotations

import argparse
import json
import random
import time
import urllib.error
import urllib.request

import anthropic
import openai
import pytest

from tripost.errors import TripostError
from tripost.serve import Faults, TeacherService, start_server
from tripost.serve.command import add_arguments, faults_from
from tripost.tasks import get_task, sample_problems
from tripost.teachers import make_teacher
from tripost.teachers.scripted import ScriptedTeacher

TOKEN = "tpst-test-DO-NOT-LEAK-batch-token-13579"
DEADLINE_S = 10.0
OPENAI_DONE = ("completed", "failed", "expired", "cancelled")


# ---------------------------------------------------------------- helpers ---


def _requests(n: int = 4):
    """ChatRequests as tripost's prompted teacher builds them: feedback on wrong
    attempts and on a gold rationale, and one improve request."""
    task = get_task("arithmetic")
    problems = sample_problems(task, n=n, seed=3)
    # No temperature (the provider's default): the same requests go to both providers' batch routes.
    t = make_teacher("openai:scripted", cache=False, api_key="sk-none-000000", temperature=None)
    try:
        out = []
        for i, p in enumerate(problems[:-1]):
            out.append(t.build_request("feedback", p, task.corrupt(p, 1, random.Random(i))))
        out.append(t.build_request("feedback", problems[-1], problems[-1].rationale))
        return out
    finally:
        t.close()


REQUESTS = _requests()


def openai_body(req) -> dict:
    return {"model": "scripted", "messages": req.openai_messages(), "max_completion_tokens": req.max_tokens,
            "temperature": req.temperature, "stop": [s for s in req.stop if s.strip()]}


def anthropic_params(req) -> dict:
    """A batch item's params as the teacher sends them (no sampling parameters
    under the pinned SDK's API version; the prefix cached for an hour)."""
    t = make_teacher("anthropic:scripted", cache=False, api_key="sk-ant-none-000000")
    try:
        return t.backend.batch_params(req)
    finally:
        t.close()


NO_BLOCK_OPENAI = {"model": "scripted", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20}
NO_BLOCK_ANTHROPIC = {"model": "scripted", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}


def jsonl(bodies: list[dict], ids: list[str] | None = None) -> bytes:
    ids = ids or [f"req-{i}" for i in range(len(bodies))]
    return "".join(json.dumps({"custom_id": c, "method": "POST", "url": "/v1/chat/completions", "body": b}) + "\n"
                   for c, b in zip(ids, bodies)).encode()


def clients(srv):
    oc = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.token, max_retries=0, timeout=10)
    ac = anthropic.Anthropic(base_url=srv.url, api_key=srv.token, max_retries=0, timeout=10)
    return oc, ac


def serve(**faults):
    return start_server(ScriptedTeacher(), token=TOKEN, faults=Faults(**faults))


def openai_batch(oc, bodies, ids=None, **kw):
    f = oc.files.create(file=("batch.jsonl", jsonl(bodies, ids)), purpose="batch")
    return oc.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h", **kw)


def wait_openai(oc, batch_id, until=OPENAI_DONE):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        b = oc.batches.retrieve(batch_id)
        if b.status in until or time.monotonic() > deadline:
            return b
        time.sleep(0.02)


def wait_anthropic(ac, batch_id):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        b = ac.messages.batches.retrieve(batch_id)
        if b.processing_status == "ended" or time.monotonic() > deadline:
            return b
        time.sleep(0.02)


def lines(oc, file_id) -> list[dict]:
    return [json.loads(x) for x in oc.files.content(file_id).text.splitlines()]


def anthropic_batch(ac, params_list, ids=None):
    ids = ids or [f"req-{i}" for i in range(len(params_list))]
    return ac.messages.batches.create(requests=[{"custom_id": c, "params": p} for c, p in zip(ids, params_list)])


def live_message(ac, params: dict):
    """The live /v1/messages answer to a batch item's params."""
    return ac.messages.create(**params)


def stats(srv) -> dict:
    with urllib.request.urlopen(srv.url + "/stats") as r:
        return json.loads(r.read())


def raw(srv, method, path, headers=None, data=None):
    req = urllib.request.Request(srv.url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def strip_ids(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("id", "created")}


def expected_faults(faults: Faults, n: int) -> list:
    """The next `n` draws of a fresh server's fault stream."""
    replica = TeacherService(ScriptedTeacher(), faults=faults)
    return [replica.draw_fault() for _ in range(n)]


# ------------------------------------------------------------------ tests ---


def test_openai_batch_answers_as_the_live_route():
    bodies = [openai_body(r) for r in REQUESTS] + [NO_BLOCK_OPENAI]
    with serve() as srv:
        oc, _ = clients(srv)
        data = jsonl(bodies)
        f = oc.files.create(file=("batch.jsonl", data), purpose="batch")
        assert (f.object, f.purpose, f.status, f.bytes, f.filename) == ("file", "batch", "processed", len(data), "batch.jsonl")
        assert f.id.startswith("file-") and oc.files.content(f.id).content == data
        assert oc.files.retrieve(f.id).id == f.id
        b = oc.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                              metadata={"run": "t1"})
        assert b.id.startswith("batch_") and b.status == "validating" and b.metadata == {"run": "t1"}
        b = wait_openai(oc, b.id)
        assert b.status == "completed", b
        assert (b.request_counts.total, b.request_counts.completed, b.request_counts.failed) == (5, 4, 1)
        assert b.created_at <= b.in_progress_at <= b.completed_at and b.expires_at == b.created_at + 86400
        assert b.failed_at is None and b.errors is None
        assert oc.files.retrieve(b.output_file_id).purpose == "batch_output"
        out, err = lines(oc, b.output_file_id), lines(oc, b.error_file_id)
        assert [x["custom_id"] for x in out] == ["req-0", "req-1", "req-2", "req-3"]
        for line, body in zip(out, bodies):
            assert line["id"].startswith("batch_req_") and line["error"] is None
            assert line["response"]["status_code"] == 200 and line["response"]["request_id"]
            live = oc.chat.completions.create(**body).to_dict()
            assert strip_ids(line["response"]["body"]) == strip_ids(live)
        # An item the teacher refuses (no request block) is errored as the live route answers it.
        [bad] = err
        assert bad["custom_id"] == "req-4" and bad["error"] is None and bad["response"]["status_code"] == 400
        with pytest.raises(openai.BadRequestError) as e:
            oc.chat.completions.create(**NO_BLOCK_OPENAI)
        assert bad["response"]["body"] == e.value.response.json()
        assert bad["response"]["body"]["error"]["type"] == "invalid_request_error"
        assert [x.id for x in oc.batches.list()] == [b.id]
        s = stats(srv)
    assert s["batches"] == {"created": 1, "openai": 1, "anthropic": 0, "requests": 5, "succeeded": 4,
                            "errored": 1, "expired": 0, "canceled": 0}
    assert s["by_path"]["/v1/batches/{id}"] >= 1 and s["by_path"]["/v1/files/{id}/content"] == 3
    assert not any(b.id in p or f.id in p for p in s["by_path"])
    assert s["faults"] == {}


def test_anthropic_batch_answers_as_the_live_route():
    params = [anthropic_params(r) for r in REQUESTS] + [NO_BLOCK_ANTHROPIC]
    ids = ["a-0", "a_1", "A2", "x" * 64, "no-block"]
    with serve() as srv:
        _, ac = clients(srv)
        b = anthropic_batch(ac, params, ids)
        assert b.id.startswith("msgbatch_") and b.type == "message_batch" and b.processing_status == "in_progress"
        assert b.request_counts.processing == 5 and b.results_url is None and b.ended_at is None
        b = wait_anthropic(ac, b.id)
        assert b.processing_status == "ended", b
        rc = b.request_counts
        assert (rc.processing, rc.succeeded, rc.errored, rc.expired, rc.canceled) == (0, 4, 1, 0, 0)
        assert b.results_url == f"{srv.url}/v1/messages/batches/{b.id}/results" and b.ended_at >= b.created_at
        results = list(ac.messages.batches.results(b.id))
        assert [r.custom_id for r in results] == ids
        for r, p in zip(results[:4], params):
            assert r.result.type == "succeeded"
            live = live_message(ac, p).to_dict()
            got = r.result.message.to_dict()
            assert got["content"][0]["text"].startswith("Feedback: ")
            assert strip_ids(got) == strip_ids(live)
        err = results[4].result
        assert err.type == "errored" and err.error.error.type == "invalid_request_error"
        assert "tripost-request" in err.error.error.message
        assert [x.id for x in ac.messages.batches.list()] == [b.id]
        # The live route next to the batch routes still answers.
        assert live_message(ac, params[0]).content[0].text == results[0].result.message.content[0].text
        s = stats(srv)
    assert s["batches"] == {"created": 1, "openai": 0, "anthropic": 1, "requests": 5, "succeeded": 4,
                            "errored": 1, "expired": 0, "canceled": 0}
    assert s["by_path"]["/v1/messages/batches/{id}/results"] == 1 and s["by_path"]["/v1/messages"] == 5


def test_injected_faults_make_errored_garbage_and_malformed_items():
    faults = dict(fail_rate=0.3, fail_codes=(429, 500, "quota"), garbage_rate=0.25, malformed_rate=0.25, seed=11)
    n = 12
    bodies = [openai_body(REQUESTS[i % len(REQUESTS)]) for i in range(n)]
    params = [anthropic_params(REQUESTS[i % len(REQUESTS)]) for i in range(n)]
    want = expected_faults(Faults(**faults), 2 * n)  # the OpenAI batch's items, then the Anthropic batch's
    kinds = {f[0] if f else None for f in want[:n]} & {f[0] if f else None for f in want[n:]}
    assert kinds == {"fail", "garbage", "malformed", None}  # the seed exercises every case in both
    assert {f[1][0] for f in want if f and f[0] == "fail"} == {429, 500, "quota"}
    clean = TeacherService(ScriptedTeacher())
    with serve(**faults) as srv:
        oc, ac = clients(srv)
        b = wait_openai(oc, openai_batch(oc, bodies).id)
        assert b.status == "completed"
        fails = [f for f in want[:n] if f and f[0] == "fail"]
        assert (b.request_counts.total, b.request_counts.completed, b.request_counts.failed) == (n, n - len(fails), len(fails))
        by_id = {x["custom_id"]: x for x in lines(oc, b.output_file_id) + lines(oc, b.error_file_id)}
        for i, fault in enumerate(want[:n]):
            line = by_id[f"req-{i}"]
            resp = line["response"]
            if fault and fault[0] == "fail":
                code = fault[1][0]
                assert resp["status_code"] == (429 if code == "quota" else code)
                error = resp["body"]["error"]
                assert error["type"] == {429: "rate_limit_error", 500: "api_error", "quota": "insufficient_quota"}[code]
                assert error["code"] == ("insufficient_quota" if code == "quota" else None)
                continue
            assert resp["status_code"] == 200 and line["error"] is None
            content = resp["body"]["choices"][0]["message"]["content"]
            if fault and fault[0] == "malformed":
                assert content == 5
            elif fault:
                assert content == fault[1]
            else:
                assert content == clean.openai_completion(bodies[i])["choices"][0]["message"]["content"]

        a = wait_anthropic(ac, anthropic_batch(ac, params).id)
        results = list(ac.messages.batches.results(a.id))
        fails = [f for f in want[n:] if f and f[0] == "fail"]
        assert (a.request_counts.succeeded, a.request_counts.errored) == (n - len(fails), len(fails))
        for i, (r, fault) in enumerate(zip(results, want[n:])):
            if fault and fault[0] == "fail":
                assert r.result.type == "errored"
                assert r.result.error.error.type == {429: "rate_limit_error", 500: "api_error", "quota": "billing_error"}[fault[1][0]]
                continue
            assert r.result.type == "succeeded"
            text = r.result.message.content[0].text
            if fault and fault[0] == "malformed":
                assert text is None
            elif fault:
                assert text == fault[1]
            else:
                assert text == clean.anthropic_message(params[i])["content"][0]["text"]
        s = stats(srv)
    fails = [f for f in want if f and f[0] == "fail"]
    assert s["batches"]["errored"] == len(fails) and s["batches"]["succeeded"] == 2 * n - len(fails)
    assert sum(v for k, v in s["faults"].items() if k.startswith("batch_fail_")) == len(fails)
    assert s["faults"].get("batch_malformed", 0) == sum(1 for f in want if f and f[0] == "malformed")
    assert s["by_status"].keys() == {"200"}  # the management requests themselves get no fault


def test_expired_items_are_exactly_the_drawn_ones():
    rate, seed, n = 0.35, 4, 10
    draws = random.Random(seed + 1)
    expire = [draws.random() < rate for _ in range(2 * n)]  # the OpenAI batch's items, then the Anthropic one's
    assert 0 < sum(expire[:n]) < n and 0 < sum(expire[n:]) < n
    bodies = [openai_body(REQUESTS[i % len(REQUESTS)]) for i in range(n)]
    params = [anthropic_params(REQUESTS[i % len(REQUESTS)]) for i in range(n)]
    with serve(batch_expire_rate=rate, seed=seed) as srv:
        oc, ac = clients(srv)
        b = wait_openai(oc, openai_batch(oc, bodies).id)
        a = wait_anthropic(ac, anthropic_batch(ac, params).id)
        assert b.status == "expired" and b.expired_at is not None and b.completed_at is None
        k = sum(expire[:n])
        assert (b.request_counts.total, b.request_counts.completed, b.request_counts.failed) == (n, n - k, k)
        err = lines(oc, b.error_file_id)
        assert [x["custom_id"] for x in err] == [f"req-{i}" for i in range(n) if expire[i]]
        for x in err:
            assert x["response"] is None and x["error"]["code"] == "batch_expired"
        assert [x["custom_id"] for x in lines(oc, b.output_file_id)] == [f"req-{i}" for i in range(n) if not expire[i]]

        assert a.processing_status == "ended" and a.request_counts.expired == sum(expire[n:])
        types = [r.result.type for r in ac.messages.batches.results(a.id)]
        assert types == ["expired" if e else "succeeded" for e in expire[n:]]
        s = stats(srv)
    assert s["batches"]["expired"] == sum(expire) and s["batches"]["succeeded"] == 2 * n - sum(expire)


def test_cancel_stops_a_batch_and_cancels_its_items():
    bodies = [openai_body(r) for r in REQUESTS]
    params = [anthropic_params(r) for r in REQUESTS]
    with serve(batch_latency=5.0) as srv:
        oc, ac = clients(srv)
        started = time.monotonic()
        b = wait_openai(oc, openai_batch(oc, bodies).id, until=("in_progress",) + OPENAI_DONE)
        assert b.status == "in_progress" and b.in_progress_at is not None and b.request_counts.completed == 0
        c = oc.batches.cancel(b.id)
        assert c.status == "cancelling" and c.cancelling_at is not None
        b = wait_openai(oc, b.id)
        assert b.status == "cancelled" and b.cancelled_at is not None and b.output_file_id is None
        assert (b.request_counts.completed, b.request_counts.failed) == (0, len(bodies))
        err = lines(oc, b.error_file_id)
        assert [x["error"]["code"] for x in err] == ["batch_cancelled"] * len(bodies) and err[0]["response"] is None
        with pytest.raises(openai.ConflictError):
            oc.batches.cancel(b.id)

        a = anthropic_batch(ac, params)
        # Results before the batch has ended: refused with a clear message.
        status, body = raw(srv, "GET", f"/v1/messages/batches/{a.id}/results", {"x-api-key": TOKEN})
        err_body = json.loads(body)
        assert status == 400 and err_body["type"] == "error" and "not ended" in err_body["error"]["message"]
        with pytest.raises(anthropic.AnthropicError, match="results_url"):
            list(ac.messages.batches.results(a.id))
        c = ac.messages.batches.cancel(a.id)
        assert c.processing_status == "canceling" and c.cancel_initiated_at is not None
        a = wait_anthropic(ac, a.id)
        assert a.processing_status == "ended" and a.request_counts.canceled == len(params)
        assert [r.result.type for r in ac.messages.batches.results(a.id)] == ["canceled"] * len(params)
        assert time.monotonic() - started < 4.0  # cancelling cut the 5 s batch latency short
        s = stats(srv)
    assert s["batches"]["canceled"] == 2 * len(bodies) and s["batches"]["succeeded"] == 0


def test_a_bad_input_file_fails_the_batch_and_bad_requests_are_400():
    good = {"custom_id": "ok", "method": "POST", "url": "/v1/chat/completions", "body": openai_body(REQUESTS[0])}
    rows = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "custom_id": None}),
        json.dumps(good),  # custom_id used twice
        json.dumps({**good, "custom_id": "u", "url": "/v1/embeddings"}),
        json.dumps({**good, "custom_id": "m", "method": "GET"}),
        json.dumps({**good, "custom_id": "b", "body": "text"}),
    ]
    with serve() as srv:
        oc, _ = clients(srv)
        f = oc.files.create(file=("bad.jsonl", "\n".join(rows).encode()), purpose="batch")
        b = oc.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        b = wait_openai(oc, b.id)
        assert b.status == "failed" and b.failed_at is not None
        assert [(e.code, e.line) for e in b.errors.data] == [("invalid_request", n) for n in range(2, 8)]
        assert b.output_file_id is None and b.error_file_id is None and b.request_counts.total == 0
        # Bytes that are not UTF-8 travel intact, then fail validation.
        data = b"\xff\xfe\r\nnot text\r\n"
        f = oc.files.create(file=("bin.jsonl", data), purpose="batch")
        assert oc.files.content(f.id).content == data
        b = wait_openai(oc, oc.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h").id)
        assert b.status == "failed" and b.errors.data[0].code == "invalid_file_format"
        with pytest.raises(openai.BadRequestError, match="purpose"):
            oc.files.create(file=("x.jsonl", jsonl([good["body"]])), purpose="fine-tune")
        with pytest.raises(openai.NotFoundError):
            oc.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
        with pytest.raises(openai.BadRequestError, match="endpoint"):
            oc.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")
        with pytest.raises(openai.BadRequestError, match="completion_window"):
            oc.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="1h")
        with pytest.raises(openai.NotFoundError):
            oc.batches.retrieve("batch_nope")
        with pytest.raises(openai.NotFoundError):
            oc.files.content("file-nope")
        status, _ = raw(srv, "POST", "/v1/files", {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}, b"{}")
        assert status == 400
        status, _ = raw(srv, "GET", f"/v1/batches/{b.id}/cancel", {"authorization": f"Bearer {TOKEN}"})
        assert status == 405
        s = stats(srv)
    assert s["batches"]["created"] == 2 and s["batches"]["requests"] == 0


@pytest.mark.parametrize("request_list, match", [
    ([{"custom_id": "bad id!", "params": NO_BLOCK_ANTHROPIC}], "custom_id"),
    ([{"custom_id": "y" * 65, "params": NO_BLOCK_ANTHROPIC}], "custom_id"),
    ([{"custom_id": "same", "params": NO_BLOCK_ANTHROPIC}] * 2, "unique"),
    ([{"custom_id": "a", "params": {"model": "m", "messages": []}}], "max_tokens"),
    ([], "non-empty"),
])
def test_bad_anthropic_batches_are_refused_at_once(request_list, match):
    with serve() as srv:
        _, ac = clients(srv)
        with pytest.raises(anthropic.BadRequestError, match=match) as e:
            ac.messages.batches.create(requests=request_list)
        assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "invalid_request_error"
        with pytest.raises(anthropic.NotFoundError):
            ac.messages.batches.retrieve("msgbatch_nope")
        assert stats(srv)["batches"]["created"] == 0


ROUTES = [
    ("POST", "/v1/files", "openai"), ("GET", "/v1/files", "openai"), ("GET", "/v1/files/file-x", "openai"),
    ("GET", "/v1/files/file-x/content", "openai"), ("POST", "/v1/batches", "openai"), ("GET", "/v1/batches", "openai"),
    ("GET", "/v1/batches/batch_x", "openai"), ("POST", "/v1/batches/batch_x/cancel", "openai"),
    ("POST", "/v1/messages/batches", "anthropic"), ("GET", "/v1/messages/batches", "anthropic"),
    ("GET", "/v1/messages/batches/msgbatch_x", "anthropic"), ("GET", "/v1/messages/batches/msgbatch_x/results", "anthropic"),
    ("POST", "/v1/messages/batches/msgbatch_x/cancel", "anthropic"),
]


def test_every_batch_route_needs_the_token():
    with serve() as srv:
        for headers in ({}, {"authorization": "Bearer tpst-wrong-token-000", "x-api-key": "nope-nope-nope"}):
            for method, path, flavour in ROUTES:
                status, body = raw(srv, method, path, headers, b"{}" if method == "POST" else None)
                assert status == 401, (method, path)
                err = json.loads(body)
                if flavour == "anthropic":
                    assert err["type"] == "error" and err["error"]["type"] == "authentication_error", path
                else:
                    assert err["error"]["type"] == "authentication_error", path
                assert TOKEN not in body.decode()
        oc = openai.OpenAI(base_url=srv.url + "/v1", api_key="tpst-wrong-token-000", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            oc.files.create(file=("b.jsonl", b"{}"), purpose="batch")
        ac = anthropic.Anthropic(base_url=srv.url, api_key="tpst-wrong-token-000", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            ac.messages.batches.create(requests=[{"custom_id": "a", "params": NO_BLOCK_ANTHROPIC}])
        s = stats(srv)
    assert s["by_status"] == {"401": 2 * len(ROUTES) + 2}
    assert "/v1/batches/{id}/cancel" in s["by_path"] and not any("batch_x" in p for p in s["by_path"])
    assert s["batches"]["created"] == 0


def test_batch_fault_options_are_validated_and_passed_through():
    for bad in (dict(batch_expire_rate=1.5), dict(batch_expire_rate=-0.1), dict(batch_latency=-1.0)):
        with pytest.raises(TripostError, match="batch"):
            Faults(**bad)
    p = argparse.ArgumentParser()
    add_arguments(p)
    f = faults_from(p.parse_args(["--batch-latency", "2.5", "--batch-expire-rate", "0.25", "--seed", "9"]))
    assert (f.batch_latency, f.batch_expire_rate, f.seed) == (2.5, 0.25, 9)
    assert (faults_from(p.parse_args([])).batch_latency, faults_from(p.parse_args([])).batch_expire_rate) == (0.0, 0.0)


def test_batch_items_follow_the_providers_sampling_rules():
    """Issue 29: a Message Batch created under anthropic-version 2026-10-21
    (the pinned SDK's) errors each item that carries temperature, top_p or
    top_k, 400, as the API does; one created under 2023-06-01 answers it.
    An OpenAI batch item for a reasoning model errors on a temperature other
    than 1 and on max_tokens."""
    good = anthropic_params(REQUESTS[0])
    with serve() as srv:
        oc, ac = clients(srv)
        sampled = [{**good, "temperature": 1.0}, {**good, "top_p": 0.5}, {**good, "top_k": 3}, good]
        b = wait_anthropic(ac, anthropic_batch(ac, sampled).id)
        results = {r.custom_id: r.result for r in ac.messages.batches.results(b.id)}
        for i, name in enumerate(("temperature", "top_p", "top_k")):
            r = results[f"req-{i}"]
            assert r.type == "errored" and r.error.error.type == "invalid_request_error"
            assert r.error.error.message == f"{name}: Extra inputs are not permitted"
        assert results["req-3"].type == "succeeded"
        old = anthropic.Anthropic(base_url=srv.url, api_key=srv.token, max_retries=0, timeout=10,
                                  default_headers={"anthropic-version": "2023-06-01"})
        b = wait_anthropic(old, anthropic_batch(old, sampled[:1]).id)
        assert [r.result.type for r in old.messages.batches.results(b.id)] == ["succeeded"]

        reasoning = {**openai_body(REQUESTS[0]), "model": "gpt-5-mini"}
        del reasoning["temperature"]
        bodies = [{**reasoning, "temperature": 0}, {**reasoning, "temperature": 1}, reasoning,
                  {**{k: v for k, v in reasoning.items() if k != "max_completion_tokens"}, "max_tokens": 20}]
        b = wait_openai(oc, openai_batch(oc, bodies).id)
        out = {x["custom_id"]: x for x in lines(oc, b.output_file_id)}
        err = {x["custom_id"]: x for x in lines(oc, b.error_file_id)}
        assert sorted(out) == ["req-1", "req-2"] and sorted(err) == ["req-0", "req-3"]
        assert err["req-0"]["response"]["status_code"] == 400
        assert err["req-0"]["response"]["body"]["error"]["code"] == "unsupported_value"
        assert err["req-3"]["response"]["body"]["error"]["param"] == "max_tokens"


def test_anthropic_batch_items_write_the_prompt_cache_for_an_hour():
    """The teacher marks a batch item's prefix with the 1-hour TTL; the
    server reports the writes under ephemeral_1h_input_tokens, as the API
    does, and the usage bucket keeps them apart for their price."""
    from tripost.teachers.chat import Usage

    params = anthropic_params(REQUESTS[0])
    marks = [b["cache_control"] for m in params["messages"] for b in m["content"] if "cache_control" in b]
    assert marks == [{"type": "ephemeral", "ttl": "1h"}]
    with start_server(ScriptedTeacher(), token=TOKEN, cache_min_tokens=0) as srv:
        _, ac = clients(srv)
        b = wait_anthropic(ac, anthropic_batch(ac, [params, params]).id)
        usages = [r.result.message.usage for r in ac.messages.batches.results(b.id)]
    first, second = (Usage.from_anthropic(u) for u in usages)
    assert first.cache_write_tokens > 0 and first.cache_write_1h_tokens == first.cache_write_tokens
    assert second.cache_read_tokens == first.cache_write_tokens and second.cache_write_tokens == 0
