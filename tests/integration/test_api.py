"""`dnft api` over real HTTP, against real Postgres, tansu and a blob store, with versions
rendered by the regenerator's own planner and render worker: metadata, images, collections,
the OpenAPI document, bad input, conditional requests and the rate limit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
import orjson
import pytest
import structlog
from openapi_spec_validator import validate as validate_openapi
from yarl import URL

from dnft.devservices import PostgresService
from tests.support.api import ApiWorld, another_server, api_world, error_of, get
from tests.support.messages import CONTRACT, event


class TestMetadata:
    """Current and versioned metadata are the stored documents, byte for byte."""

    async def test_current_metadata(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        status, headers, body = await get(http, f"{sample_api.base}/tokens/1")
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        digest = hashlib.sha256(body).hexdigest()
        assert headers["ETag"] == f'"{digest}"'
        assert sample_api.store.get(digest) == body, "served bytes are the stored blob"
        assert headers["Cache-Control"] == "public, max-age=60, must-revalidate"
        assert headers["Content-Location"] == "/tokens/1/versions/3"
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert headers["X-Content-Type-Options"] == "nosniff"
        document = orjson.loads(body)
        assert document["name"] == "Critter #1"
        traits = {a["trait_type"]: a["value"] for a in document["attributes"]}
        assert (traits["stage"], traits["fed"], traits["market"]) == ("kid", 2, "bull")
        sha = document["provenance"]["image_sha256"]
        assert document["image"] == f"http://127.0.0.1:8000/images/{sha}"

    async def test_one_version_is_immutable(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        status, headers, body = await get(http, f"{sample_api.base}/tokens/1/versions/1")
        assert status == 200
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        document = orjson.loads(body)
        assert document["provenance"]["state"]["stage"] == "egg"
        async with sample_api.pool.acquire() as conn:
            stored = await conn.fetchval(
                "select metadata_sha256 from token_versions where token_id = 1 and version = 1"
            )
        assert hashlib.sha256(body).hexdigest() == stored
        status, error = await error_of(http, f"{sample_api.base}/tokens/1/versions/4")
        assert (status, error["error"]) == (404, "not_found")
        assert "no version 4" in error["message"]

    async def test_versions_list_says_what_triggered_each(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        status, _, body = await get(http, f"{sample_api.base}/tokens/1/versions")
        assert status == 200
        listing = orjson.loads(body)
        assert listing["next"] is None
        v1, v2, v3 = listing["versions"]
        assert [v["version"] for v in (v1, v2, v3)] == [1, 2, 3]
        assert v1["triggers"][0]["event"] == "Transfer"
        assert "first version" in v1["summary"]
        assert v2["triggers"] == [
            {
                "kind": "feed",
                "feed": "eth-usd",
                "traits": ["market"],
                "label": "feed eth-usd: market unknown → bull",
            }
        ]
        assert v2["summary"] == "feed eth-usd: market unknown → bull"
        assert {"trait": "stage", "from": "egg", "to": "kid"} in v3["changes"]
        assert [t["event"] for t in v3["triggers"]] == ["Fed", "Fed", "TraitSet"]
        assert v3["traits"]["mood"].startswith('"><script>'), "JSON carries the raw value"
        assert v3["metadata_url"] == "http://127.0.0.1:8000/tokens/1/versions/3"
        for v in (v1, v2, v3):
            image = sample_api.store.get(v["image_sha256"])
            assert image.startswith(b"\x89PNG")
        assert len({v["image_sha256"] for v in (v1, v2, v3)}) == 3, "each version has its art"

    async def test_versions_list_pages(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        _, _, body = await get(http, f"{sample_api.base}/tokens/1/versions?limit=2")
        first = orjson.loads(body)
        assert [v["version"] for v in first["versions"]] == [1, 2]
        assert first["next"] == "/tokens/1/versions?after=2&limit=2"
        _, _, body = await get(http, sample_api.base + first["next"])
        second = orjson.loads(body)
        assert [v["version"] for v in second["versions"]] == [3]
        assert second["next"] is None
        assert {"trait": "fed", "from": "0", "to": "2"} in second["versions"][0]["changes"], (
            "a page's first entry is compared with the version before it"
        )


class TestImages:
    """Images are served by sha256 with their type and immutable caching."""

    async def test_image(self, sample_api: ApiWorld, http: aiohttp.ClientSession) -> None:
        _, _, body = await get(http, f"{sample_api.base}/tokens/1")
        sha = orjson.loads(body)["provenance"]["image_sha256"]
        status, headers, image = await get(http, f"{sample_api.base}/images/{sha}")
        assert status == 200
        assert headers["Content-Type"] == "image/png"
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["ETag"] == f'"{sha}"'
        assert hashlib.sha256(image).hexdigest() == sha
        async with http.head(f"{sample_api.base}/images/{sha}") as head:
            assert head.status == 200
            assert head.headers["Content-Type"] == "image/png"

    async def test_only_images_of_versions(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        _, _, body = await get(http, f"{sample_api.base}/tokens/1")
        metadata_sha = hashlib.sha256(body).hexdigest()
        assert sample_api.store.exists(metadata_sha)
        status, error = await error_of(http, f"{sample_api.base}/images/{metadata_sha}")
        assert status == 404, "a stored blob that is no version's image is not served"
        status, error = await error_of(http, f"{sample_api.base}/images/{'ab' * 32}")
        assert (status, error["error"]) == (404, "not_found")
        status, error = await error_of(http, f"{sample_api.base}/images/{'AB' * 32}")
        assert (status, error["error"]) == (400, "bad_request")


class TestCollections:
    """A collection by contract address lists its tokens' current versions."""

    async def test_collection(self, sample_api: ApiWorld, http: aiohttp.ClientSession) -> None:
        status, headers, body = await get(
            http, f"{sample_api.base}/collections/{CONTRACT.upper()[2:]}"
        )
        assert status == 400, "an address without 0x is refused"
        address = "0x" + CONTRACT[2:].upper()  # any case is accepted
        status, headers, body = await get(http, f"{sample_api.base}/collections/{address}")
        assert status == 200
        assert headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
        collection = orjson.loads(body)
        assert (collection["name"], collection["chain_id"]) == ("sample", 31337)
        assert collection["contract"] == CONTRACT
        tokens = {t["token_id"]: t for t in collection["tokens"]}
        assert tokens["1"]["version"] == 3
        assert tokens["1"]["metadata"] == "http://127.0.0.1:8000/tokens/1"
        assert "2" in tokens
        assert "5" not in tokens, "a token without a rendered version is not listed"
        _, _, body = await get(http, f"{sample_api.base}/collections/{CONTRACT}?limit=1")
        page = orjson.loads(body)
        assert [t["token_id"] for t in page["tokens"]] == ["1"]
        assert page["next"] == f"/collections/{CONTRACT}?after=1&limit=1"
        status, error = await error_of(http, f"{sample_api.base}/collections/0x{'12' * 20}")
        assert (status, error["error"]) == (404, "not_found")


class TestOpenApi:
    """The OpenAPI document is valid and lists exactly the routes served."""

    async def test_document(self, sample_api: ApiWorld, http: aiohttp.ClientSession) -> None:
        status, _, body = await get(http, f"{sample_api.base}/openapi.json")
        assert status == 200
        document = orjson.loads(body)
        validate_openapi(document)
        assert sample_api.server.app is not None
        served = {r.canonical for r in sample_api.server.app.router.resources()}
        assert set(document["paths"]) == served


BAD_IDS = ["-1", "abc", str(2**256), "1e3", "01", "1.0", "+1", "0x1", "١", "1 ", "9" * 5000]


class TestBadInput:
    """Malformed ids and traversal attempts get 400/404 JSON and reach no file."""

    @pytest.mark.parametrize("bad", BAD_IDS)
    async def test_bad_token_ids(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession, bad: str
    ) -> None:
        for path in ("/tokens/{}", "/tokens/{}/versions", "/tokens/{}/versions/1"):
            status, error = await error_of(http, sample_api.base + path.format(bad))
            assert (status, error["error"]) == (400, "bad_request"), (path, error)
            assert len(error["message"]) < 300, "huge input is not echoed back"

    @pytest.mark.parametrize("bad", ["0", "-1", "abc", str(2**31), "1e3", "01"])
    async def test_bad_versions(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession, bad: str
    ) -> None:
        status, error = await error_of(http, f"{sample_api.base}/tokens/1/versions/{bad}")
        assert (status, error["error"]) == (400, "bad_request")

    async def test_largest_token_id_is_valid(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        status, error = await error_of(http, f"{sample_api.base}/tokens/{2**256 - 1}")
        assert (status, error["error"]) == (404, "not_found")

    @pytest.mark.parametrize(
        "path",
        [
            "/images/..%2f..%2fetc%2fpasswd",
            "/images/..%2F..%2F..%2Fetc%2Fpasswd",
            "/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "/images/..%252f..%252fetc%252fpasswd",
            "/images/..%5c..%5cetc%5cpasswd",
            "/images/../../etc/passwd",
            "/images/%2e%2e/%2e%2e/etc/passwd",
            "/images/" + "a" * 62 + "%2f.",
            "/static/..%2fapp.py",
            "/static/../../../pyproject.toml",
            "/static/%2e%2e%2fruntime.py",
            "/tokens/1/versions/..%2f..%2f..%2fetc%2fpasswd",
        ],
    )
    async def test_traversal(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession, path: str
    ) -> None:
        assert sample_api.server.context is not None
        reads = sample_api.server.context.blobs.store_reads
        async with http.get(URL(sample_api.base + path, encoded=True)) as response:
            body = await response.read()
            assert response.status in (400, 404), (path, response.status)
            assert response.content_type == "application/json"
        assert b"root:" not in body
        assert b"[project]" not in body
        assert b"import" not in body
        assert sample_api.server.context.blobs.store_reads == reads, "no blob was read"


class TestUnknownTokens:
    """Tokens the regenerator does not know, or has not rendered yet, are 404 JSON."""

    async def test_unknown(self, sample_api: ApiWorld, http: aiohttp.ClientSession) -> None:
        for path in ("/tokens/999", "/tokens/999/versions", "/tokens/999/versions/1"):
            status, error = await error_of(http, sample_api.base + path)
            assert (status, error["error"]) == (404, "not_found"), path
            assert "no token 999" in error["message"]
        status, error = await error_of(http, f"{sample_api.base}/tokens/999/view")
        assert status == 404
        status, error = await error_of(http, f"{sample_api.base}/nowhere")
        assert (status, error["error"]) == (404, "not_found")

    async def test_not_rendered_yet(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        status, error = await error_of(http, f"{sample_api.base}/tokens/5")
        assert status == 404
        assert "no rendered version yet" in error["message"]


class TestConditionalRequests:
    """ETags round-trip: If-None-Match gives 304 until a new version changes the document."""

    async def test_etag_round_trip(self, sample_api: ApiWorld, http: aiohttp.ClientSession) -> None:
        assert await sample_api.maker.step([event(20, "Transfer", 7, to="0xdd")]) == [1]
        url = f"{sample_api.base}/tokens/7"
        status, headers, first = await get(http, url)
        assert status == 200
        etag = headers["ETag"]
        for tag in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
            status, hdrs, body = await get(http, url, headers={"If-None-Match": tag})
            assert (status, body) == (304, b""), tag
            assert hdrs["ETag"] == etag
        status, _, body = await get(http, url, headers={"If-None-Match": '"other"'})
        assert (status, body) == (200, first)

        listing_url = f"{sample_api.base}/tokens/7/versions"
        _, listing_headers, _ = await get(http, listing_url)
        status, _, _ = await get(
            http, listing_url, headers={"If-None-Match": listing_headers["ETag"]}
        )
        assert status == 304

        assert await sample_api.maker.step([event(21, "Fed", 7, amount="1")]) == [2]
        status, headers, body = await get(http, url, headers={"If-None-Match": etag})
        assert status == 200, "a new version changes the current document"
        assert headers["ETag"] != etag
        assert orjson.loads(body)["provenance"]["state"]["traits"]["fed"] == "1"
        status, _, _ = await get(
            http, listing_url, headers={"If-None-Match": listing_headers["ETag"]}
        )
        assert status == 200


class TestReadOnly:
    """Only GET and HEAD exist: every other method is 405 JSON and changes nothing."""

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
    async def test_methods(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession, method: str
    ) -> None:
        for path in ("/tokens/1", "/images/" + "ab" * 32, "/", "/tokens/1/view"):
            async with http.request(method, sample_api.base + path, data=b"{}") as response:
                assert response.status == 405, (method, path)
                assert (await response.json())["error"] == "method_not_allowed"
                assert "GET" in response.headers["Allow"]
        async with sample_api.pool.acquire() as conn:
            assert (
                await conn.fetchval("select count(*) from token_versions where token_id = 1") == 3
            )


class TestRateLimit:
    """Each client has a request budget; beyond it, 429 JSON with Retry-After."""

    async def test_429(
        self,
        postgres: PostgresService,
        kafka_bootstrap: str,
        tmp_path: Path,
        http: aiohttp.ClientSession,
    ) -> None:
        limits = {"rate_limit": {"requests_per_s": 0.5, "burst": 5}}
        async with api_world(postgres, kafka_bootstrap, tmp_path, api=limits) as w:
            statuses = []
            for i in range(7):
                # A forged X-Forwarded-For does not make a new client (not trusted by default).
                hdrs = {"X-Forwarded-For": f"10.0.0.{i}"}
                async with http.get(f"{w.base}/tokens/1", headers=hdrs) as response:
                    statuses.append(response.status)
                    if response.status == 429:
                        assert int(response.headers["Retry-After"]) >= 1
                        assert (await response.json())["error"] == "rate_limited"
            assert statuses == [404] * 5 + [429] * 2


class TestStorageDown:
    """A storage failure is a generic 503 with a request id; the cause is only in the log."""

    async def test_503_body_says_nothing_of_storage(
        self, sample_api: ApiWorld, http: aiohttp.ClientSession
    ) -> None:
        sha = await sample_api.pool.fetchval(
            "select metadata_sha256 from token_versions where token_id = 2 order by version desc"
        )
        path = sample_api.store.path(sha)
        aside = path.with_name(path.name + ".aside")
        path.rename(aside)
        path.mkdir()  # the blob's place can no longer be read: IsADirectoryError
        try:
            # A server of its own: a cold cache, so storage is really read.
            async with another_server(sample_api) as base:
                with structlog.testing.capture_logs() as logs:
                    async with http.get(f"{base}/tokens/2") as response:
                        status, text = response.status, await response.text()
                        request_id = response.headers["X-Request-Id"]
                        retry = response.headers["Retry-After"]
        finally:
            path.rmdir()
            aside.rename(path)
        assert (status, retry) == (503, "5")
        body = orjson.loads(text)
        assert body == {
            "error": "unavailable",
            "message": "service unavailable; retry later",
            "request_id": request_id,
        }
        root = str(sample_api.settings.regenerator.storage.path)
        for secret in (root, sha, "storage", "Errno", "directory"):
            assert secret not in text, secret
        (logged,) = [e for e in logs if e.get("request_id") == request_id]
        assert root in logged["detail"]
        assert "StorageError" in logged["detail"]
