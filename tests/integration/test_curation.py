"""Curation against real Postgres, tansu and `dnft api`: guardrails in the real render worker
(blank, near-duplicate and malformed-metadata renders are refused, retried with the next
seed, and the previous version stays public), the review queue (nothing public or announced
before approval; approval publishes and announces once; rejection never does; re-roll
renders again with a new seed), and /curate's authentication and CSRF defences."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from dnft import metrics
from dnft.devservices import PostgresService
from tests.support.api import another_server
from tests.support.curate import BASIC, BEARER, USER, CurateWorld, curate_world, request
from tests.support.kafka import read_topic
from tests.support.messages import event, render_jobs, retraction


def rejections(check: str) -> float:
    return float(metrics.guardrail_rejections_total.labels("sample", check)._value.get())


def mint(n: int, token: int) -> dict[str, object]:
    return event(n, "Transfer", token, to=f"0x{token:040x}")


async def token_json(world: CurateWorld, token: int) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http:
        status, _, body = await request(http, "GET", f"{world.base}/tokens/{token}/versions")
    return status, orjson.loads(body) if status == 200 else {}


async def current(world: CurateWorld, token: int) -> dict[str, Any]:
    """The token's current metadata as the public API serves it."""
    async with aiohttp.ClientSession() as http:
        status, _, body = await request(http, "GET", f"{world.base}/tokens/{token}")
    assert status == 200
    document: dict[str, Any] = orjson.loads(body)
    return document


async def public_versions(world: CurateWorld, token: int) -> list[int]:
    rows = await world.pool.fetch(
        "select version from token_versions where token_id = $1 order by version", token
    )
    return [int(r["version"]) for r in rows]


def _world(publish: str) -> Any:
    """A fixture: a curation world publishing ``publish`` (auto or review)."""

    @pytest.fixture(name=f"{publish}_world")
    async def world(
        postgres: PostgresService, kafka_bootstrap: str, tmp_path: Path
    ) -> AsyncIterator[CurateWorld]:
        async with curate_world(postgres, kafka_bootstrap, tmp_path, publish) as w:
            yield w

    return world


auto_world = _world("auto")
review_world = _world("review")


class TestGuardrails:
    """Bad renders never become public; the worker retries with the next seed."""

    async def test_blank_duplicate_and_bad_metadata(self, auto_world: CurateWorld) -> None:
        world, script = auto_world, auto_world.renderer.script
        assert await world.maker.step([mint(1, 1)]) == [1]

        # A blank render, then a good one with the next seed: version 2 from attempt 2.
        blank_before = rejections("blank")
        script[1] = ["blank", "ok"]
        assert await world.maker.step([event(2, "Fed", 1, amount="1")]) == [2]
        assert rejections("blank") == blank_before + 1
        failed = [c for c in await world.candidates(1) if c["status"] == "guardrail_failed"]
        assert len(failed) == 1
        assert orjson.loads(failed[0]["reasons"])[0]["check"] == "blank"
        job_seed = int(failed[0]["job_seed"])
        assert int(failed[0]["seed"]) == job_seed
        seed_v2 = (await current(world, 1))["provenance"]["seed"]
        assert seed_v2 == job_seed + 1

        # Every attempt fails (a copy of the previous art, a document failing the schema, a
        # blank): nothing new is public or announced; each reason is recorded.
        dup_before, meta_before = rejections("near_duplicate"), rejections("metadata")
        script[1] = ["dup", "badmeta", "blank"]
        assert await world.maker.step([event(3, "Fed", 1, amount="1")]) == []
        assert rejections("near_duplicate") == dup_before + 1
        assert rejections("metadata") == meta_before + 1
        assert await public_versions(world, 1) == [1, 2]
        latest = [c for c in await world.candidates(1) if c["attempt"] >= 0][-3:]
        reasons = [orjson.loads(c["reasons"])[0] for c in latest]
        assert [r["check"] for r in reasons] == ["near_duplicate", "metadata", "blank"]
        assert "the token's previous version (version 2)" in reasons[0]["reason"]
        assert "provenance/seed" in reasons[1]["reason"]
        assert [int(c["seed"]) - int(c["job_seed"]) for c in latest] == [0, 1, 2]
        assert [u["version"] for u in world.updates() if u["token_id"] == "1"] == [1, 2]
        assert (await current(world, 1))["provenance"]["seed"] == seed_v2  # still version 2
        # The refused image is not served publicly (curators see it under /curate).
        dup_image = latest[1]["image_sha256"]
        async with aiohttp.ClientSession() as http:
            status, _, _ = await request(http, "GET", f"{world.base}/images/{dup_image}")
            assert status == 404
            status, _, _ = await request(
                http, "GET", f"{world.base}/curate/images/{dup_image}", headers=BEARER
            )
            assert status == 200

        # Another token's copy of token 1's art is refused too.
        script[2] = ["dup:1", "ok"]
        assert await world.maker.step([mint(4, 2)]) == [1]
        refused = await world.candidates(2)
        assert "token 1's art" in orjson.loads(refused[0]["reasons"])[0]["reason"]

        # A re-delivered job renders nothing again (its attempts are recorded).
        renders = len(world.renderer.requests)
        assert await world.maker.worker.handle(world.maker.sent_jobs()) == []
        assert len(world.renderer.requests) == renders


class TestReview:
    """In review mode nothing is public or announced until a curator approves it."""

    async def test_hold_approve_reject_reroll(self, review_world: CurateWorld) -> None:
        world = review_world
        assert await world.maker.step([mint(1, 1), mint(2, 2)]) == []
        pending = await world.pool.fetch(
            "select id, token_id from curation_candidates where status = 'pending' "
            "order by token_id"  # the two renders may finish in either order
        )
        assert [int(r["token_id"]) for r in pending] == [1, 2]
        one, two = int(pending[0]["id"]), int(pending[1]["id"])
        assert (await token_json(world, 1))[0] == 404
        assert world.updates() == []

        async with aiohttp.ClientSession() as http:
            status, _, body = await request(
                http, "GET", f"{world.base}/curate/pending", headers=BEARER
            )
            assert status == 200
            assert sorted(c["id"] for c in orjson.loads(body)["pending"]) == sorted([one, two])

            # Approve token 1 (bearer: a script), twice: published and announced once.
            for attempt in range(2):
                status, _, body = await request(
                    http,
                    "POST",
                    f"{world.base}/curate/decide",
                    data={"action": "approve", "id": str(one), "note": "lovely"},
                    headers=BEARER,
                )
                assert status == 200
                decision = orjson.loads(body)["decisions"][0]
                assert decision["changed"] is (attempt == 0)
            assert decision["outcome"] == "no change: already public"
            # Reject token 2 (basic auth from the page's form: CSRF token needed).
            token, cookies = await page_csrf(http, world)
            status, headers, _ = await request(
                http,
                "POST",
                f"{world.base}/curate/decide",
                data={"csrf": token, "one": f"reject:{two}"},
                headers={**BASIC, "Origin": world.base},
                cookies=cookies,
            )
            assert status == 303
            assert headers["Location"].startswith("/curate?done=")

        await asyncio.sleep(0.2)
        assert await public_versions(world, 1) == [1]
        assert (await token_json(world, 1))[0] == 200
        assert (await token_json(world, 2))[0] == 404
        updates = world.updates()
        assert [(u["token_id"], u["version"]) for u in updates] == [("1", 1)]
        assert updates[0]["metadata_uri"].endswith("/tokens/1/versions/1")
        decisions = await world.pool.fetch(
            "select candidate_id, action, curator, note from curation_decisions order by id"
        )
        assert [(d["candidate_id"], d["action"], d["curator"]) for d in decisions] == [
            (one, "approve", "ci-bot"),
            (one, "approve", "ci-bot"),
            (two, "reject", USER),
        ]
        assert decisions[0]["note"] == "lovely"

        # Token 1 evolves: held again; the curator re-rolls it: a new job with a new seed.
        assert await world.maker.step([event(3, "Fed", 1, amount="1")]) == []
        held = (await world.candidates(1))[-1]
        assert held["status"] == "pending"
        async with aiohttp.ClientSession() as http:
            status, _, body = await request(
                http,
                "POST",
                f"{world.base}/curate/decide",
                data={"action": "reroll", "id": str(held["id"])},
                headers=BEARER,
            )
        assert status == 200
        jobs = read_topic(world.maker.bootstrap, world.jobs_topic, 30, 0.5)
        reroll = [j for j in jobs if int(j["seed"]) not in {int(held["job_seed"])}]
        reroll = [j for j in reroll if j["state_hash"] == held["state_hash"]]
        assert len(reroll) == 1
        assert await world.maker.worker.handle(render_jobs(reroll)) == []
        latest = await world.candidates(1)
        assert [c["status"] for c in latest[-2:]] == ["superseded", "pending"]
        assert int(latest[-1]["seed"]) == int(reroll[0]["seed"])
        assert await public_versions(world, 1) == [1]  # still nothing new public
        assert (await world.approve(latest[-1]["id"]))["version"] == 2
        await asyncio.sleep(0.2)
        assert [(u["token_id"], u["version"]) for u in world.updates()] == [("1", 1), ("1", 2)]


class TestReviewTimeline:
    """Back in a state a curator approved before, a token is public again without review; an
    approval of a state the token has left publishes nothing."""

    async def test_return_copied_and_stale_approval_refused(
        self, review_world: CurateWorld
    ) -> None:
        world = review_world
        assert await world.maker.step([mint(1, 1)]) == []
        (first,) = await world.candidates(1)
        assert (await world.approve(first["id"]))["version"] == 1
        assert await world.maker.step([event(2, "Fed", 1, amount="1")]) == []
        second = (await world.candidates(1))[-1]
        assert (await world.approve(second["id"]))["version"] == 2

        # The Fed is reorged away: version 1's state, public again as version 3, unreviewed.
        renders = len(world.renderer.requests)
        assert await world.maker.step([retraction(2, 1)]) == [3]
        assert len(await world.candidates(1)) == 2, "no candidate: nothing to review"
        assert len(world.renderer.requests) == renders, "nothing rendered"
        # Fed again (another log): version 2's state, as version 4.
        assert await world.maker.step([event(4, "Fed", 1, amount="1")]) == [4]
        rows = await world.pool.fetch(
            "select version, state_hash, image_sha256 from token_versions where token_id = 1 "
            "order by version"
        )
        assert [(r["state_hash"], r["image_sha256"]) for r in rows[2:]] == [
            (rows[0]["state_hash"], rows[0]["image_sha256"]),
            (rows[1]["state_hash"], rows[1]["image_sha256"]),
        ]
        assert (await current(world, 1))["provenance"]["state_hash"] == rows[1]["state_hash"]

        # A new state is held; the token leaves it before the curator decides.
        assert await world.maker.step([event(5, "Fed", 1, amount="1")]) == []
        held = (await world.candidates(1))[-1]
        assert held["status"] == "pending"
        assert await world.maker.step([retraction(5, 1)]) == [], "version 4 is that state"
        decision = await world.approve(held["id"])
        assert decision["changed"] is False
        assert decision["outcome"] == "superseded: the token's state changed since this render"
        assert await public_versions(world, 1) == [1, 2, 3, 4]
        await asyncio.sleep(0.2)
        # Version 4 again: the retraction's job re-announced it (consumers dedupe).
        assert sorted(u["version"] for u in world.updates()) == [1, 2, 3, 4, 4]


async def page_csrf(http: aiohttp.ClientSession, world: CurateWorld) -> tuple[str, dict[str, str]]:
    """The CSRF token in the queue page's form and the cookie the page set."""
    async with http.get(f"{world.base}/curate", headers=BASIC) as response:
        assert response.status == 200
        html = await response.text()
        cookie = response.cookies["dnft_curate_csrf"]
        assert cookie["samesite"] == "Strict"
        assert cookie["httponly"]
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)], {"dnft_curate_csrf": cookie.value}


class TestCurateAuth:
    """Nothing under /curate answers without credentials; posts must come from the page."""

    async def test_credentials_required(self, review_world: CurateWorld) -> None:
        world = review_world
        assert await world.maker.step([mint(1, 1)]) == []
        image = (await world.candidates(1))[0]["image_sha256"]
        wrong_basic = "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()
        paths = [
            ("GET", "/curate"),
            ("GET", "/curate/"),
            ("GET", "/curate/pending"),
            ("GET", f"/curate/images/{image}"),
            ("GET", "/curate/no-such-page"),
            ("GET", "/CURATE"),
            ("POST", "/curate/decide"),
        ]
        async with aiohttp.ClientSession() as http:
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token-xxxxxxxxxxxx"},
                {"Authorization": wrong_basic},
                {"Authorization": "Basic ???"},
            ):
                for method, path in paths:
                    status, hdrs, body = await request(
                        http,
                        method,
                        world.base + path,
                        headers=headers,
                        data={"action": "approve", "id": "1"} if method == "POST" else None,
                    )
                    assert status == 401, (method, path, headers)
                    assert hdrs["WWW-Authenticate"].startswith("Basic")
                    assert hdrs["Cache-Control"] == "no-store"
                    assert "Access-Control-Allow-Origin" not in hdrs
                    assert image.encode() not in body
            status, hdrs, _ = await request(http, "GET", world.base + "/curate", headers=BASIC)
            assert status == 200
            assert "form-action 'self'" in hdrs["Content-Security-Policy"]
            status, _, _ = await request(
                http, "GET", world.base + "/curate/no-such-page", headers=BASIC
            )
            assert status == 404
        assert (await world.candidates(1))[0]["status"] == "pending"

    async def test_cross_site_posts_refused(self, review_world: CurateWorld) -> None:
        world = review_world
        assert await world.maker.step([mint(1, 1)]) == []
        cid = str((await world.candidates(1))[0]["id"])
        async with aiohttp.ClientSession() as http:
            token, cookies = await page_csrf(http, world)
            form = {"csrf": token, "action": "approve", "id": cid}
            cases = [
                ({"Origin": "http://evil.example"}, form, cookies),
                ({"Origin": "null"}, form, cookies),
                ({}, form, cookies),  # neither Origin nor Referer
                ({"Referer": "http://evil.example/page"}, form, cookies),
                ({"Origin": world.base}, {"action": "approve", "id": cid}, cookies),
                ({"Origin": world.base}, {**form, "csrf": "0" * 64}, cookies),
                ({"Origin": world.base}, form, {}),  # no cookie
                ({"Origin": world.base}, form, {"dnft_curate_csrf": "another-nonce"}),
            ]
            for extra, data, jar in cases:
                http.cookie_jar.clear()
                status, _, body = await request(
                    http,
                    "POST",
                    f"{world.base}/curate/decide",
                    data=data,
                    headers={**BASIC, **extra},
                    cookies=jar,
                )
                assert status == 403, (extra, data, jar)
                assert orjson.loads(body)["error"] == "forbidden"
            assert (await world.candidates(1))[0]["status"] == "pending"
            assert await world.pool.fetchval("select count(*) from curation_decisions") == 0
            # The same post from the page itself goes through.
            http.cookie_jar.clear()
            status, _, _ = await request(
                http,
                "POST",
                f"{world.base}/curate/decide",
                data=form,
                headers={**BASIC, "Origin": world.base},
                cookies=cookies,
            )
            assert status == 303
        assert (await world.candidates(1))[0]["status"] == "public"


def logins_refused(reason: str) -> float:
    return float(metrics.api_curate_logins_refused_total.labels(reason)._value.get())


class TestLoginThrottle:
    """Failed basic-auth logins are throttled per client address (429, before any PBKDF2
    run); other clients are not; behind a TLS proxy the CSRF cookie is Secure and HSTS sent."""

    async def test_throttle_secure_cookie_and_hsts(self, review_world: CurateWorld) -> None:
        world = review_world
        curate = world.settings.api.curate.model_copy(
            update={"failed_logins_burst": 3, "failed_logins_per_min": 1.0}
        )
        wrong = {"Authorization": "Basic " + base64.b64encode(f"{USER}:guess".encode()).decode()}
        async with (
            another_server(world, curate=curate, trusted_proxies=1, public_https=True) as base,
            aiohttp.ClientSession() as http,
        ):

            async def get(client: str, auth: dict[str, str]) -> tuple[int, Any, bytes]:
                headers = {**auth, "X-Forwarded-For": f"1.2.3.4, {client}"}
                return await request(http, "GET", f"{base}/curate", headers=headers)

            for _ in range(3):
                assert (await get("203.0.113.9", wrong))[0] == 401
            throttled = logins_refused("throttled")
            status, hdrs, body = await get("203.0.113.9", wrong)
            assert status == 429
            assert int(hdrs["Retry-After"]) >= 50  # one failure a minute from now on
            assert orjson.loads(body)["error"] == "rate_limited"
            # Even the right password waits: it cannot be told apart without PBKDF2.
            assert (await get("203.0.113.9", BASIC))[0] == 429
            assert logins_refused("throttled") == throttled + 2
            # Another client signs in; the page's cookie is Secure and HSTS is sent.
            status, hdrs, _ = await get("203.0.113.10", BASIC)
            assert status == 200
            assert hdrs["Strict-Transport-Security"] == "max-age=31536000"
            cookie = hdrs["Set-Cookie"]
            assert cookie.startswith("dnft_curate_csrf=")
            assert "Secure" in cookie
            assert "SameSite=Strict" in cookie
            # Remembered credentials pass even from the throttled address.
            assert (await get("203.0.113.9", BASIC))[0] == 200
            status, hdrs, _ = await request(http, "GET", f"{base}/tokens/1")
            assert hdrs["Strict-Transport-Security"] == "max-age=31536000"
        # The world's own server (public_https off): no HSTS, no Secure on plain HTTP.
        async with aiohttp.ClientSession() as http:
            status, hdrs, _ = await request(http, "GET", f"{world.base}/curate", headers=BASIC)
        assert status == 200
        assert "Strict-Transport-Security" not in hdrs
        assert "Secure" not in hdrs["Set-Cookie"]
