"""The search page in a real headless Chromium (skipped where no browser is installed)."""

from __future__ import annotations

import io
import re

import pytest

pytest.importorskip(
    "fastapi", reason="the server extra is not installed (pip install embedpipe[serve])"
)

from PIL import Image  # noqa: E402

from embedpipe.index.server import create_app  # noqa: E402

from ._browser import Browser, chromium_path, dump_dom  # noqa: E402
from ._http import running_server  # noqa: E402

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="no Chromium on this machine (Debian: apt-get install -y chromium)",
)


@pytest.fixture(scope="module")
def text_url(text_index):
    with running_server(create_app(text_index, title="sentences")) as url:
        yield url


@pytest.fixture(scope="module")
def image_url(image_index):
    with running_server(create_app(image_index, title="digits")) as url:
        yield url


def test_page_runs_a_text_search_from_the_url(text_url):
    """--dump-dom: the page's script fetches /health and /search and renders the neighbours."""
    dom = dump_dom(f"{text_url}/?q=rockets+and+astronauts&k=3")
    assert 'data-state="done"' in dom
    ids = re.findall(r'<li class="result" data-id="([^"]+)"', dom)
    assert len(ids) == 3 and all(i.startswith("space-") for i in ids)
    assert "sentences: 24 text items" in dom
    assert '<div id="image-row" class="row" hidden="">' in dom or 'id="image-row" hidden' in dom


def test_page_uploads_an_image_and_shows_thumbnails(image_url, image_folder, tmp_path):
    query = image_folder / "digit0" / "5.png"
    with Browser() as b:
        b.goto(image_url + "/")
        b.wait_for("document.body.dataset.state === 'done'")
        # An image index has no text box (really invisible, not just flagged hidden).
        assert b.js("getComputedStyle(document.getElementById('text-row')).display") == "none"
        assert b.js("getComputedStyle(document.getElementById('image-row')).display") == "flex"
        # Nothing typed or chosen: the page says what to do.
        b.js("document.getElementById('search-button').click()")
        assert "choose an image" in b.wait_for(
            "!document.getElementById('error').hidden && document.getElementById('error').textContent"
        )

        b.set_files("#query-image", [str(query)])
        b.js(
            "document.getElementById('k').value = '5'; document.getElementById('search-button').click()"
        )
        b.wait_for(
            "document.body.dataset.state === 'done' && document.querySelectorAll('#results li').length === 5"
        )
        ids = b.js("[...document.querySelectorAll('#results li')].map(li => li.dataset.id)")
        assert ids[0] == "digit0/5.png"
        labels = b.js(
            "[...document.querySelectorAll('#results .result-label')].map(e => e.textContent)"
        )
        assert labels[0] == "digit0"
        # Every thumbnail was fetched and decoded by the browser.
        b.wait_for(
            "[...document.querySelectorAll('#results img.thumb')].every(i => i.complete && i.naturalWidth === 160)"
        )
        assert b.js("document.getElementById('query-preview').hidden") is False

        png = b.screenshot()
        shot = Image.open(io.BytesIO(png))
        assert shot.size[0] >= 800 and len(set(shot.convert("L").getdata())) > 20
        (tmp_path / "page.png").write_bytes(png)

        # Clicking a result searches for more like it, by id.
        b.js("document.querySelectorAll('#results li')[1].click()")
        clicked = ids[1]
        b.wait_for(f"document.getElementById('status').textContent.includes('id \"{clicked}\"')")
        assert b.js("document.getElementById('query-id').value") == clicked
        assert clicked not in b.js(
            "[...document.querySelectorAll('#results li')].map(li => li.dataset.id)"
        )


def test_page_shows_server_errors(text_url):
    with Browser() as b:
        b.goto(text_url + "/?id=no-such-item")
        message = b.wait_for(
            "document.body.dataset.state === 'error' && document.getElementById('error').textContent"
        )
        assert message.startswith("404") and "no-such-item" in message
        assert b.js("document.querySelectorAll('#results li').length") == 0


def test_page_shows_each_hits_text(content_index):
    """A store that keeps each row's text: the page shows it under the hit, with the label."""
    with running_server(create_app(content_index, title="with text")) as url:
        dom = dump_dom(f"{url}/?q=simmer+a+sauce&k=3")
    assert 'data-state="done"' in dom
    texts = re.findall(r'<div class="result-content">([^<]+)</div>', dom)
    assert (
        len(texts) == 3
        and texts[0] == "Simmer the tomato sauce with garlic and basil for twenty minutes."
    )
    assert re.findall(r'<span class="result-label">([^<]*)</span>', dom)[0] == "cooking"


def test_page_filter_control_restricts_the_hits(content_index):
    """The filter box: typed, it sends "where" with the query; only matching hits come back;
    a bad filter shows the server's one-line message naming the columns."""
    with running_server(create_app(content_index, title="with text")) as url, Browser() as b:
        b.goto(url + "/")
        b.wait_for("document.body.dataset.state === 'done'")
        assert "label" in b.js("document.getElementById('where-columns').textContent")
        b.js(
            "document.getElementById('query-text').value = 'a rocket launch';"
            "document.getElementById('where').value = \"label == 'cooking'\";"
            "document.getElementById('k').value = '5';"
            "document.getElementById('search-button').click()"
        )
        b.wait_for(
            "document.body.dataset.state === 'done' && document.querySelectorAll('#results li').length === 5"
        )
        labels = b.js(
            "[...document.querySelectorAll('#results .result-label')].map(e => e.textContent)"
        )
        assert labels == ["cooking"] * 5
        assert "where label == 'cooking' (8 matching)" in b.js(
            "document.getElementById('status').textContent"
        )
        assert "where=" in b.js("window.location.search")
        b.js(
            "document.getElementById('where').value = \"topic == 'space'\";"
            "document.getElementById('search-button').click()"
        )
        message = b.wait_for(
            "document.body.dataset.state === 'error' && document.getElementById('error').textContent"
        )
        assert message.startswith("400") and "no column 'topic'" in message and "label" in message
