"""The embedding map in a real headless Chromium: points drawn, text on hover, neighbours on
click, box selection (skipped where no browser is installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedpipe.curate import curate
from embedpipe.report.embedding_map import write_map

from ..index._browser import Browser, chromium_path
from ._data import planted

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium_path() is None,
        reason="no Chromium on this machine (Debian: apt-get install -y chromium)",
    ),
]


@pytest.fixture(scope="module")
def map_page(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("map")
    p = planted(tmp)
    result = curate([p.train, p.test], k=5, engine="builtin")
    page = write_map(result, tmp / "map.html", method="pca", cache_dir=tmp / "cache")
    return page, result


def _mouse(b: Browser, kind: str, x: float, y: float, **extra) -> None:
    b.send(
        "Input.dispatchMouseEvent",
        {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1, **extra},
        session=True,
    )


def _where(b: Browser, i: int) -> tuple[float, float]:
    x, y = b.js(
        f"(() => {{ const r = document.getElementById('map').getBoundingClientRect();"
        f" const p = embeddingMap.toScreen({i}); return [r.left + p[0], r.top + p[1]]; }})()"
    )
    return float(x), float(y)


def test_map_draws_hovers_and_lists_neighbours(map_page: tuple[Path, object]) -> None:
    page, result = map_page
    with Browser() as b:
        b.goto(page.as_uri())
        b.wait_for("window.embeddingMap !== undefined")
        assert b.js("embeddingMap.data.x.length") == 300
        # points are drawn: many non-background pixels on the canvas
        coloured = b.js(
            "(() => { const c = document.getElementById('map');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()"
        )
        assert coloured > 300
        # hover over the near-duplicate row train-10 (upper-cased text): the tooltip shows it
        i = b.js("embeddingMap.data.id.indexOf('train:train-10')")
        x, y = _where(b, i)
        _mouse(b, "mouseMoved", x, y)
        tip = b.wait_for(
            "!document.getElementById('tip').hidden && document.getElementById('tip').textContent"
        )
        assert "train:train-" in tip and "about a" in tip.lower()
        # click the outlier: the panel lists its graph neighbours and its issues
        i = b.js("embeddingMap.data.id.indexOf('train:train-50')")
        x, y = _where(b, i)
        _mouse(b, "mouseMoved", x, y)
        _mouse(b, "mousePressed", x, y)
        _mouse(b, "mouseReleased", x, y)
        listed = b.wait_for(
            "document.querySelectorAll('#neighbours li').length &&"
            " [...document.querySelectorAll('#neighbours li')].map(li => li.textContent)"
        )
        row = result.corpus.ids.tolist().index("train-50")
        expected = [result.corpus.ref(int(j)) for j in result.graph.rows[row]]
        assert [t.split()[0] for t in listed] == expected
        assert "outlier" in b.js("document.getElementById('detail').textContent")
        # shift-drag a box around the whole map: every point is selected and listed
        left, top, right, bottom = b.js(
            "(() => { const r = document.getElementById('map').getBoundingClientRect();"
            " return [r.left, r.top, r.right, r.bottom]; })()"
        )
        _mouse(b, "mousePressed", left + 2, top + 2, modifiers=8)
        _mouse(b, "mouseMoved", (left + right) / 2, (top + bottom) / 2, modifiers=8, buttons=1)
        _mouse(b, "mouseMoved", right - 2, bottom - 2, modifiers=8, buttons=1)
        _mouse(b, "mouseReleased", right - 2, bottom - 2, modifiers=8)
        n = b.wait_for("embeddingMap.selection.length")
        assert n >= 250
        assert b.js("document.getElementById('nsel').textContent") == str(n)
