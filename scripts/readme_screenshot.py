"""Makes docs/console-search.png, the README's picture of the web console.

The shared test photos are not ours to redistribute, so the photos in the
picture are blurred beyond recognition; the boxes, labels and similarities
are the console's real output for them.

    .venv/bin/python scripts/readme_screenshot.py
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.e2e.test_console import CHROMIUM, CHROMIUM_ARGS, DESKTOP, Console  # noqa: E402
from tests.support.live_server import live_server  # noqa: E402
from tests.support.photos import REPO  # noqa: E402

OUT = REPO / "docs" / "console-search.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, live_server(Path(tmp) / "data") as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        console = Console(browser, server, DESKTOP, "desktop")
        console.index({"Keanu-Reeves.jpg": "Keanu Reeves", "Lawrence2.jpg": "Lawrence", "Avril-Lavigne.jpg": "Avril"})
        console.search("Keanu-Avril-Mike.jpg", every_face=True)
        # The page's CSP forbids inline style sheets; the CSS object model is fine.
        console.page.evaluate(
            """document.querySelectorAll('img[src^="blob:"]').forEach(i => { i.style.filter = 'blur(14px)'; })"""
        )
        console.page.wait_for_load_state("networkidle")
        OUT.parent.mkdir(exist_ok=True)
        console.page.screenshot(path=OUT, full_page=True)
        console.close()
        browser.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
