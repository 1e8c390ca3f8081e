"""The explorer in a real browser against the real pipeline data and the real scorer.

Started as a user would: `bentoml serve serving.service:Scorer` and `streamlit run
serving/explorer/app.py --server.headless true`, on a local profile the pipeline's own functions
prepared. Every page is opened in headless Chromium, checked for its heading and for the absence
of Streamlit's exception element, and screenshotted to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from infra.lake import Lake
from infra.settings import Settings
from serving.client import ScoringClient
from serving.explorer import data, scoring
from tests.support.cdp import Chromium
from tests.support.cli import ROOT
from tests.support.profiles import local_profile_env

SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
APP = ROOT / "serving" / "explorer" / "app.py"
# url path, heading, texts the page must show once the pipeline ran and the scorer is up
PAGES = [
    ("", "Pipeline", ["Expected value", "Mean win probability", "Breakdown"]),
    ("opportunity", "Opportunity", ["What drives this score", "What-if win probability"]),
    ("features", "Features", ["Feature views", "Feature services"]),
    ("quality", "Data quality", ["Quality score", "Score history"]),
    ("models", "Models", ["Champion vs challenger", "Training runs"]),
]
FEATURE_TABS = ["Freshness", "Distributions", "Point in time"]


@pytest.fixture(scope="module")
def browser(chromium: str, e2e_dir: Path) -> Iterator[Chromium]:
    browser = Chromium(chromium, e2e_dir / "chromium-profile", e2e_dir / "chromium.log")
    yield browser
    browser.close()


def body_text(browser: Chromium) -> str:
    return str(browser.evaluate("document.body.innerText"))


def test_every_page_renders_without_errors(browser: Chromium, explorer_url: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seen: dict[str, dict] = {}
    for path, heading, texts in PAGES:
        browser.open(f"{explorer_url}/{path}")
        state = browser.wait_rendered(heading)
        name = heading.lower().replace(" ", "_")
        browser.screenshot(SCREENSHOTS / f"{name}.png")
        assert not state["exceptions"], (heading, state["exceptions"])
        assert heading in state["titles"]
        text = body_text(browser)
        missing = [t for t in texts if t not in text]
        assert not missing, (heading, missing, state["alerts"])
        assert not [a for a in state["alerts"] if "not available" in a], state["alerts"]
        seen[heading] = state
    for tab in FEATURE_TABS:
        browser.open(f"{explorer_url}/features")
        browser.wait_rendered("Features")
        clicked = browser.evaluate(
            "(() => { const t = Array.from(document.querySelectorAll('[data-testid=\"stTab\"]'))"
            f".find((b) => b.innerText.includes({json.dumps(tab)})); if (t) t.click(); "
            "return !!t; })()"
        )
        assert clicked, tab
        state = browser.wait_rendered("Features")
        browser.screenshot(SCREENSHOTS / f"features_{tab.lower().replace(' ', '_')}.png")
        assert not state["exceptions"], (tab, state["exceptions"])
    assert len(list(SCREENSHOTS.glob("*.png"))) >= len(PAGES) + len(FEATURE_TABS)


def test_pages_show_the_scorers_numbers(e2e_profile: Settings, scorer_url: str) -> None:
    """In-process AppTest against the same running scorer: the totals and the what-if are the
    API's own numbers."""
    lake = Lake.from_settings(e2e_profile)
    deals = data.open_deals(lake, data.latest_snapshot(lake))
    with ScoringClient(scorer_url) as client:
        scores = client.score_batch(deals["opportunity_id"].tolist(), top_k=0)
        expected_total = sum(s.expected_value or 0.0 for s in scores)
        with local_profile_env(e2e_profile.home, CRM_SCORER_URL=scorer_url):
            app = AppTest.from_file(str(APP), default_timeout=180).run()
            assert not app.exception
            shown = {m.label: m.value for m in app.metric}
            assert shown["Open deals"] == f"{len(deals):,}"
            assert shown["Expected value"] == f"${expected_total:,.0f}"

            app.switch_page("pages/opportunity.py").run()
            assert not app.exception and not app.error
            deal = app.text_input[0].value
            single = client.score(deal, top_k=100)
            shown = {m.label: m.value for m in app.metric}
            assert shown["Win probability"] == f"{single.win_probability:.1%}"

            slider = app.slider[0]
            moved = slider.min if slider.value != slider.min else slider.max
            slider.set_value(moved).run()
            assert not app.exception and not app.error
            knob = next(k for k in scoring.knobs(single) if k.feature == slider.label)
            features = scoring.feature_values(single) | {knob.feature: scoring.typed(knob, moved)}
            what_if = client.score_features(features, list_price=single.list_price)
            shown = {m.label: m.value for m in app.metric}
            assert shown["What-if win probability"] == f"{what_if.win_probability:.1%}"
