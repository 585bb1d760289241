"""The timeline page in a real browser (headless Chromium, driven by
Playwright): the demo database's page draws PL's events of 2025-09 as the
API counts them, the map draws every placed event over the vendored
country shapes, a box dragged on the map filters the table to exactly the
events the API's `bbox` query returns, brushing a time range on the lanes
filters the map, the as-of slider changes the drawing, and a screenshot is
kept in target/ as a CI artifact.

Usage: python3 .ci/browser_check.py ANNALS_BINARY
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

from playwright.sync_api import sync_playwright

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.load(r)


def pl_september(base, as_of=None):
    """Events concerning PL whose interval overlaps 2025-09, by the API."""
    q = "/events?country=PL&from=2025-09&to=2025-09&limit=1000"
    if as_of is not None:
        q += f"&as_of={as_of}"
    return {e["id"] for e in get(base, q)["events"]}


def drawn_pl_september(page):
    """Event bars on main's lane that concern PL and overlap 2025-09."""
    return set(
        page.eval_on_selector_all(
            "svg[data-lanes='main'] rect.event-bar",
            """bars => bars.filter(b => b.dataset.countries.split(' ').includes('PL')
                   && b.dataset.start < '2025-10-01' && b.dataset.end > '2025-09-01')
                 .map(b => b.dataset.id)""",
        )
    )


def map_point(page, lon, lat):
    """Where a longitude and latitude are on the screen, on the map."""
    return page.evaluate(
        """([lon, lat]) => {
            const svg = document.querySelector("svg[data-map]");
            const pt = svg.createSVGPoint();
            pt.x = (lon + 180) * 2; pt.y = (90 - lat) * 2;
            const s = pt.matrixTransform(svg.getScreenCTM());
            return [s.x, s.y];
        }""",
        [lon, lat],
    )


def drag(page, a, b):
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, steps=3)
    page.mouse.move(*b, steps=3)
    page.mouse.up()


def check_map(page, base, n):
    """The map, its box and the time brush against the API; the render count."""
    placed = [e for e in get(base, "/events?limit=1000")["events"]
              if (e.get("location") or {}).get("lat") is not None and (e.get("location") or {}).get("lon") is not None]
    assert len(placed) >= 5, placed
    land = page.get_attribute("svg[data-map] path.land", "d") or ""
    assert land.count("M") > 150, "the country shapes were not drawn"
    dots = set(page.eval_on_selector_all("svg[data-map] .event-dot", "ds => ds.map(d => d.dataset.id)"))
    assert dots == {e["id"] for e in placed}, (dots, placed)
    coarse = page.eval_on_selector_all(
        "svg[data-map] .event-dot[data-precision='admin1']", "ds => ds.map(d => d.getAttribute('fill'))"
    )
    assert coarse == ["none"], f"a province-level place is drawn as an open circle: {coarse}"
    # A box around the Low Countries, dragged as a reader would.
    page.locator("svg[data-map]").scroll_into_view_if_needed()
    drag(page, map_point(page, 2.5, 53.5), map_point(page, 6.5, 49.5))
    n = wait_rendered(page, n)
    box = page.get_attribute("svg[data-map]", "data-bbox")
    assert box, "no box after the drag"
    api = {e["seq"] for e in get(base, f"/events?bbox={box}&limit=1000")["events"]}
    table = {int(s) for s in page.eval_on_selector_all("#rows tr td:first-child", "tds => tds.map(t => t.textContent)")}
    assert table == api and len(api) >= 3, f"box {box}: the table holds {sorted(table)}, the API {sorted(api)}"
    lanes = set(page.eval_on_selector_all("svg[data-lanes='main'] rect.event-bar", "bs => bs.map(b => b.dataset.id)"))
    assert len(lanes) == len(api), (lanes, api)
    page.click("#clear-box")
    n = wait_rendered(page, n)
    # Brush December 2025 on the lanes: the map keeps the events then.
    page.locator("svg[data-lanes='main']").scroll_into_view_if_needed()
    x = page.evaluate(
        """() => { const bars = [...document.querySelectorAll("svg[data-lanes='main'] rect.event-bar")];
                   const svg = document.querySelector("svg[data-lanes='main']");
                   const r = svg.getBoundingClientRect();
                   return [r.left, r.right, r.top + 10]; }"""
    )
    drag(page, (x[0] + (x[1] - x[0]) * 0.55, x[2]), (x[1] - 2, x[2]))
    page.wait_for_function("state.brush !== null")
    lo, hi = page.evaluate("state.brush")
    shown = int(page.get_attribute("svg[data-map]", "data-shown"))
    expected = sum(1 for e in placed if e["span"]["start_ms"] < hi and lo < e["span"]["end_ms"])
    assert shown == expected and 0 < shown < len(placed), (shown, expected, len(placed))
    page.click("#clear-brush")
    return wait_rendered(page, n)


def wait_rendered(page, after):
    page.wait_for_function(f"Number(document.body.dataset.rendered || 0) > {after}")
    return int(page.evaluate("document.body.dataset.rendered"))


def main():
    annals = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="annals-browser-")
    db = os.path.join(work, "demo.db")
    subprocess.run([annals, "demo", "--out", db], check=True, stdout=subprocess.DEVNULL)
    # Port 0: the server picks a free one and says which on its first line.
    server = subprocess.Popen(
        [annals, "--db", db, "serve", "--read-only", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = server.stdout.readline()
        base = "http://" + first.split("http://")[1].split("/")[0]
        now = pl_september(base)
        then = pl_september(base, as_of=3)
        assert now != then and len(now) > len(then) > 0, (now, then)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            # First under the page's own Content-Security-Policy: it must
            # draw with nothing refused. (Locators run outside the page's
            # world, so the policy does not stop them.)
            strict = browser.new_page(viewport={"width": 1400, "height": 1000})
            refused = []
            strict.on(
                "console",
                lambda m: refused.append(m.text)
                if m.type == "error" and "Content Security Policy" in m.text
                else None,
            )
            answer = strict.goto(base + "/")
            policy = answer.headers.get("content-security-policy", "")
            assert "default-src 'none'" in policy, policy
            strict.wait_for_selector("svg[data-lanes='main'] rect.event-bar", state="attached")
            assert strict.locator("svg[data-lanes='main'] rect.event-bar").count() > 0
            assert not refused, refused
            strict.close()
            # Then driven by scripts, which evaluate strings in the page:
            # the policy (rightly) forbids that, so this context bypasses it.
            page = browser.new_page(
                viewport={"width": 1400, "height": 1000}, bypass_csp=True
            )
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            n = wait_rendered(page, 0)
            drawn = drawn_pl_september(page)
            assert drawn == now, f"at head the page drew {sorted(drawn)}, the API has {sorted(now)}"
            stacked = page.eval_on_selector_all(
                "svg[data-chart='main'] rect.count-bar[data-country='PL'][data-period='2025-09']",
                "bars => bars.map(b => Number(b.dataset.count))",
            )
            assert stacked, "no PL bar for 2025-09 in the stacked chart"
            n = check_map(page, base, n)
            # Move the slider back to seq 3, as a reader would drag it.
            page.eval_on_selector(
                "#asof",
                "s => { s.value = '3'; s.dispatchEvent(new Event('input', {bubbles: true})); }",
            )
            n = wait_rendered(page, n)
            earlier = drawn_pl_september(page)
            assert earlier == then, f"as of seq 3 the page drew {sorted(earlier)}, the API has {sorted(then)}"
            label = page.text_content("#asof-label")
            assert "seq 3" in label, label
            # The what-if branch beside main.
            page.select_option("#branch", "no-attribution")
            n = wait_rendered(page, n)
            assert page.locator("svg[data-lanes='branch no-attribution']").count() == 1
            os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
            shot = os.path.join(ROOT, "target", "timeline.png")
            page.eval_on_selector(
                "#asof",
                "s => { s.value = s.max; s.dispatchEvent(new Event('input', {bubbles: true})); }",
            )
            wait_rendered(page, n)
            page.screenshot(path=shot, full_page=True)
            browser.close()
            assert not errors, errors
        print(
            f"browser check: PL 2025-09 drew {len(now)} bars at head and {len(then)} as of seq 3; "
            f"the map's box and time brush agree with the API; screenshot {shot}"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
