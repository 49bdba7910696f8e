"""The holders' gallery in headless Chromium (Debian's, driven by Playwright): the page shows
the art and traits, a version rendered while it is open appears without a reload, and the
timeline works from the keyboard. Screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dnft.devservices import PostgresService
from tests.support.api import ApiWorld, api_world
from tests.support.browser import ARTIFACTS, chromium, needs_chromium
from tests.support.messages import event, observation

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"

pytestmark = needs_chromium


@pytest.fixture
async def world(
    postgres: PostgresService, kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[ApiWorld]:
    """Token 1 with two versions (minted; then a feed round moved its market trait)."""
    async with api_world(postgres, kafka_bootstrap, tmp_path) as w:
        assert await w.maker.step([event(1, "Transfer", 1, to="0xaa")]) == [1]
        assert await w.maker.step([observation(1, "2500")]) == [2]
        yield w


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1100, "height": 900})
        yield await context.new_page()


async def image_shown(page: Any, sha256: str) -> None:
    """Wait until #art shows (has loaded) the image ``sha256``."""
    await page.wait_for_function(
        """(sha) => { const img = document.getElementById("art");
                      return img.src.endsWith("/images/" + sha) && img.complete
                             && img.naturalWidth > 0; }""",
        arg=sha256,
        timeout=10_000,
    )


async def caption(page: Any) -> str:
    return str(await page.text_content("#caption"))


class TestGallery:
    """A holder watches their token evolve, live, and scrubs its history by keyboard."""

    async def test_token_page_live_and_keyboard(self, world: ApiWorld, page: Any) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "response",
            lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        async with world.pool.acquire() as conn:
            images = dict(
                await conn.fetch(
                    "select version, image_sha256 from token_versions where token_id = 1"
                )
            )

        await page.goto(f"{world.base}/tokens/1/view")
        await page.wait_for_selector("main[data-ready='true'][data-live='open']", timeout=10_000)
        await image_shown(page, images[2])
        alt = await page.get_attribute("#art", "alt")
        assert alt is not None
        assert alt.startswith("Critter #1, version 2: stage egg")
        traits = await page.eval_on_selector_all(
            "#traits div",
            "rows => rows.map(r => [r.children[0].textContent, r.children[1].textContent])",
        )
        assert ["stage", "egg"] in traits
        assert ["market", "bull"] in traits
        assert await page.locator("#timeline li").count() == 2
        assert "feed eth-usd: market unknown → bull" in str(
            await page.text_content("#timeline li:nth-child(2)")
        )
        await page.screenshot(path=str(ARTIFACTS / "gallery-token-before.png"), full_page=True)

        # A new version is rendered while the page is open: it appears without a reload.
        await page.evaluate("window.__sameDocument = true")
        created = await world.maker.step(
            [
                event(2, "Fed", 1, amount="1"),
                event(3, "Fed", 1, amount="1"),
                event(4, "TraitSet", 1, key="mood", value=HOSTILE),
            ]
        )
        assert created == [3]
        async with world.pool.acquire() as conn:
            images[3] = await conn.fetchval(
                "select image_sha256 from token_versions where token_id = 1 and version = 3"
            )
        await page.wait_for_function(
            "document.querySelectorAll('#timeline li').length === 3", timeout=15_000
        )
        await image_shown(page, images[3])
        assert images[3] != images[2]
        assert await page.evaluate("window.__sameDocument === true"), "no reload happened"
        assert await caption(page) == "Version 3 of 3"
        assert "New version 3" in str(await page.text_content("#live-status"))
        mood = await page.eval_on_selector_all("#traits dd", "dds => dds.map(d => d.textContent)")
        assert HOSTILE in mood, "the hostile trait is shown as text"
        assert await page.locator("img").count() == 1, "and injects no element"
        assert await page.title() != "pwned"
        await page.screenshot(path=str(ARTIFACTS / "gallery-token-live.png"), full_page=True)

        # Keyboard: the slider and the timeline links scrub through versions.
        await page.focus("#scrub")
        await page.keyboard.press("ArrowLeft")
        await image_shown(page, images[2])
        assert await caption(page) == "Version 2 of 3"
        await page.keyboard.press("Home")
        await image_shown(page, images[1])
        assert await caption(page) == "Version 1 of 3"
        await page.keyboard.press("End")
        await image_shown(page, images[3])
        await page.focus("#timeline li:nth-child(3) a")
        await page.keyboard.press("ArrowUp")
        await image_shown(page, images[2])
        focused = await page.evaluate("document.activeElement.dataset.version")
        assert focused == "2"
        assert await page.get_attribute("#timeline li:nth-child(2) a", "aria-current") == "true"
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("Enter")
        await image_shown(page, images[3])
        assert page.url.endswith("/tokens/1/view"), "the latest version has the plain URL"
        await page.screenshot(path=str(ARTIFACTS / "gallery-token-keyboard.png"))

        # Responsive: a phone-sized viewport stacks the art above the traits.
        await page.set_viewport_size({"width": 390, "height": 844})
        art = await page.locator("#art").bounding_box()
        dl = await page.locator("#traits").bounding_box()
        assert art is not None
        assert dl is not None
        assert dl["y"] > art["y"] + art["height"] - 1
        assert art["width"] <= 390
        await page.screenshot(path=str(ARTIFACTS / "gallery-token-phone.png"), full_page=True)

        await page.set_viewport_size({"width": 1100, "height": 900})
        await page.goto(f"{world.base}/")
        await page.wait_for_selector("a[href='/tokens/1/view'] img")
        card_alt = await page.get_attribute("a[href='/tokens/1/view'] img", "alt")
        assert card_alt is not None
        assert card_alt.startswith("Critter #1, version 3")
        await page.screenshot(path=str(ARTIFACTS / "gallery-collection.png"), full_page=True)
        assert errors == [], errors
