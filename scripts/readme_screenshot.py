"""Makes docs/console-search.png, the README's picture of the web console:
an every-face search of two public-domain photos that ship in tests/faces
(Obama and Biden, side by side), after indexing a portrait of each and
making each a person. Anyone can make it again from a clone:

    .venv/bin/python scripts/readme_screenshot.py
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.e2e.test_console import CHROMIUM, CHROMIUM_ARGS, DESKTOP, Console, api_json, side_by_side  # noqa: E402
from tests.support.live_server import live_server  # noqa: E402
from tests.support.photos import REPO  # noqa: E402

OUT = REPO / "docs" / "console-search.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, live_server(Path(tmp) / "data") as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        console = Console(browser, server, DESKTOP, "desktop")
        console.index({"obama.jpg": "Barack Obama", "biden.jpg": "Joe Biden", "obama2.jpg": ""})
        for key, person, name in (("obama.jpg", "obama", "Barack Obama"), ("biden.jpg", "biden", "Joe Biden")):
            (face,) = api_json(server, "GET", f"/faces?image={key}")["faces"]
            api_json(server, "PUT", f"/people/{person}", {"name": name}, want=201)
            api_json(server, "POST", f"/people/{person}/faces", {"faceIds": [face["FaceId"]]})
        console.tab("Search")
        console.page.get_by_label("Every face").set_checked(True)
        group = side_by_side("obama3.jpg", "biden.jpg")
        console.page.set_input_files("#search-file", {"name": "group.jpg", "mimeType": "image/jpeg", "buffer": group})
        expect(console.page.locator(".search-query .file-status")).to_contain_text("faces searched")
        expect(console.page.locator(".people-found")).not_to_contain_text(["Looking among people"] * 2)
        expect(console.page.locator(".match img:not([src])")).to_have_count(0)
        console.page.wait_for_timeout(500)  # the last thumbnails drawn
        OUT.parent.mkdir(exist_ok=True)
        console.page.screenshot(path=OUT, full_page=True)
        console.close()
        browser.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
