"""A curator in headless Chromium (Debian's, driven by Playwright): signs in with basic auth,
sees a pending version beside the token's current one with what triggered it, approves it
with the page's own form, and the public API then serves it. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from dnft.devservices import PostgresService
from tests.support.browser import ARTIFACTS, chromium, needs_chromium
from tests.support.curate import PASSWORD, USER, CurateWorld, curate_world, request
from tests.support.messages import event

pytestmark = needs_chromium


@pytest.fixture
async def world(
    postgres: PostgresService, kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[CurateWorld]:
    """Token 1: version 1 approved (public), then a Fed event rendered a pending version."""
    async with curate_world(postgres, kafka_bootstrap, tmp_path, "review") as w:
        assert await w.maker.step([event(1, "Transfer", 1, to="0xaa")]) == []
        await w.approve((await w.candidates(1))[0]["id"])
        assert await w.maker.step([event(2, "Fed", 1, amount="1")]) == []
        yield w


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def settled_content(page: Any, timeout_s: float = 10.0) -> str:
    """The page's HTML once no navigation is under way (content() refuses mid-navigation)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return str(await page.content())
        except Exception as exc:
            if "navigating" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


class TestCurateBrowser:
    """A curator approves a pending version through the page."""

    async def test_approve_through_the_page(self, world: CurateWorld, browser: Any) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        # Without credentials the browser gets the 401 challenge, not the queue (headless
        # Chromium cannot answer the prompt and aborts the navigation).
        anonymous = await browser.new_page()
        with pytest.raises(Exception, match="ERR_INVALID_AUTH_CREDENTIALS"):
            await anonymous.goto(f"{world.base}/curate")
        # The aborted navigation then loads Chromium's error page: read it once it settles.
        assert "Review queue" not in await settled_content(anonymous)
        await anonymous.close()

        context = await browser.new_context(
            viewport={"width": 1100, "height": 1000},
            http_credentials={"username": USER, "password": PASSWORD},
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        response = await page.goto(f"{world.base}/curate")
        assert response.status == 200
        pending = (await world.candidates(1))[-1]
        item = page.locator(f"#candidate-{pending['id']}")
        await item.wait_for()
        # Side by side: the current version 1 and the pending render, both loaded.
        images = item.locator(".pair img")
        assert await images.count() == 2
        for i in range(2):
            assert await images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
        captions = await item.locator("figcaption").all_text_contents()
        assert captions[0] == "current: version 1"
        assert captions[1].startswith("pending")
        why = str(await item.locator(".why").text_content())
        assert "Fed(amount=1) at block 2" in why
        assert "fed 0 → 1" in str(await item.locator(".changes").text_content())
        assert "signed in as ann" in str(await page.text_content("header"))
        await page.screenshot(path=str(ARTIFACTS / "curate-queue.png"), full_page=True)

        await item.get_by_role("button", name="Approve").click()
        await page.wait_for_url("**/curate?done=*")
        assert "public as version 2" in str(await page.text_content("#notice"))
        assert await page.locator(f"#candidate-{pending['id']}").count() == 0
        assert "Nothing is waiting for review." in str(await page.text_content("main"))
        assert errors == []
        await context.close()

        async with aiohttp.ClientSession() as http:
            status, _, body = await request(http, "GET", f"{world.base}/tokens/1")
        assert status == 200
        assert orjson.loads(body)["provenance"]["state_hash"] == pending["state_hash"]
        decided = await world.pool.fetchrow(
            "select curator, action from curation_decisions order by id desc limit 1"
        )
        assert (decided["curator"], decided["action"]) == (USER, "approve")
        assert [(u["token_id"], u["version"]) for u in world.updates()] == [("1", 1), ("1", 2)]
