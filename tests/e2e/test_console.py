"""The web console at `/`: its static routes through the test client, and
the page itself in Debian's Chromium (driven by Playwright) against a real
`chalice local`, indexing, searching, browsing and naming people in the
shared photos. Screenshots of each view land in artifacts/console/
(git-ignored)."""

import base64
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from app import app
from chalicelib.api.console import content_security_policy
from chalicelib.core.config import Settings
from tests.support import imagegen, photos, presigned_links
from tests.support.live_server import Server, live_server
from tests.support.photos import FACES_DIR, REPO, people

CHROMIUM = "/usr/bin/chromium"  # Debian's; the Makefile's check-browser installs it
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API_KEY = "console-test-key"
SCREENSHOTS = REPO / "artifacts" / "console"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# Two single-person photos to index, under names; a third photo of one of them to search with.
INDEXED = {"Lawrence2.jpg": "Lawrence", "Keanu-Reeves.jpg": "Keanu Reeves"}
QUERY = "Lawrence3.jpg"
GROUP = "Keanu-Avril-Lawrence.jpg"
# The people tests share one archive (indexed once per module): several photos of
# some people, and a portrait too dark for its face to be indexed.
ARCHIVE = [
    "Lawrence2.jpg",
    "Lawrence4.jpg",
    "Lawrence19.jpg",
    "Keanu-Reeves.jpg",
    "Keanu-Avril-Mike.jpg",
    "Avril-Lavigne.jpg",
    "Mike-Meyers.jpg",
]
DARK = "dark.jpg"  # Keanu-Reeves.jpg at 8% of its light
THUMB_PX = 160  # the side of the console's face thumbnails

expect.set_options(timeout=60_000)


# ---------- The routes ----------


def test_the_page_is_served_at_the_root_with_its_base_path(client):
    reply = client.http.get("/")
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    page = reply.body.decode()
    assert '<base href="/">' in page
    assert 'src="console/console.js"' in page
    assert "Content-Security-Policy" in reply.headers


@pytest.mark.parametrize(
    ("path", "base"),
    [("/api", "/api/"), ("/api/", "/api/"), ('/x"><script>/', "/x&quot;&gt;&lt;script&gt;/")],
)
def test_under_a_stage_prefix_the_page_resolves_its_urls_below_it(path, base):
    """API Gateway serves the root of stage `api` at /api/: the page's
    relative URLs (console files and API calls) must stay under it."""
    event = {
        "requestContext": {"httpMethod": "GET", "resourcePath": "/", "path": path, "stage": "api"},
        "headers": {"accept": "text/html"},
        "pathParameters": None,
        "multiValueQueryStringParameters": None,
        "stageVariables": None,
        "body": None,
        "isBase64Encoded": False,
    }
    reply = app(event, None)
    assert reply["statusCode"] == 200
    assert f'<base href="{base}">' in reply["body"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("console.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_each_console_file_is_served_with_its_type(client, name, content_type):
    reply = client.http.get(f"/console/{name}")
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == content_type
    assert reply.body == (REPO / "chalicelib" / "api" / "console" / name).read_bytes()


@pytest.mark.parametrize(
    "name", ["nothing.js", "index.html", "..%2F..%2Fapp.py", "..%2Fconsole.py", "%2Fetc%2Fpasswd", "console.JS"]
)
def test_an_unknown_or_outside_file_is_a_json_404(client, name):
    reply = client.http.get(f"/console/{name}")
    assert reply.status_code == 404
    assert reply.json_body["error"] == "NotFound"
    assert "no file named" in reply.json_body["message"]


# ---------- The page in a browser ----------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    with live_server(tmp_path / "data") as server:
        yield server


class Console:
    """The page, with what it logged and the API requests it made."""

    def __init__(self, browser: Browser, server: Server, viewport: dict, label: str) -> None:
        self.server = server
        self.label = label
        self.context = browser.new_context(viewport=viewport)
        self.page: Page = self.context.new_page()
        self.problems: list[str] = []
        self.api_requests: list[Request] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.problems.append(f"pageerror: {error}"))
        self.page.on("request", self._on_request)
        self.page.goto(server.url + "/")
        expect(self.page.locator("#api-status")).not_to_be_empty()

    def _on_console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"{message.type}: {message.text}")

    def _on_request(self, request: Request) -> None:
        if request.resource_type in ("fetch", "xhr"):
            self.api_requests.append(request)

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name).click()
        expect(self.page.locator(f"#view-{name.lower()}")).to_be_visible()

    def index(self, names: dict[str, str]) -> None:
        self.tab("Index")
        self.page.set_input_files("#index-files", [FACES_DIR / photo for photo in names])
        for photo, name in names.items():
            self.item(photo).get_by_label("Name (optional)").fill(name)
        self.page.get_by_role("button", name=re.compile(r"^Index \d+ photos?$")).click()
        expect(self.page.locator("#index-submit")).to_have_text("All indexed")

    def item(self, photo: str):
        return self.page.locator(f'.file-item[data-file="{photo}"]')

    def search(self, photo: str, every_face: bool = False, dropped: bool = False) -> None:
        self.tab("Search")
        toggle = self.page.get_by_label("Every face")
        if toggle.is_checked() != every_face:
            toggle.set_checked(every_face)
        if dropped:
            self.drop("search-drop", photo)
        else:
            self.page.set_input_files("#search-file", FACES_DIR / photo)
        expect(self.page.locator(".search-query .file-status")).to_contain_text(re.compile(f"{photo}: .* searched"))

    def drop(self, zone: str, name: str) -> None:
        """Drag a shared photo onto a drop zone, as from a file manager."""
        self.page.evaluate(
            """([zone, name, data]) => {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
                for (const type of ["dragenter", "dragover", "drop"]) {
                    const event = new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer });
                    document.getElementById(zone).dispatchEvent(event);
                }
            }""",
            [zone, name, base64.b64encode(photos.photo(name)).decode("ascii")],
        )

    def screenshot(self, view: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{view}-{self.label}.png"
        self.page.wait_for_load_state("networkidle")
        self.page.screenshot(path=path, full_page=True)
        return path

    def assert_fits_the_width(self) -> None:
        overflow = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than the {self.label} screen"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def desktop(browser, server) -> Iterator[Console]:
    console = Console(browser, server, DESKTOP, "desktop")
    yield console
    console.close()


@pytest.fixture
def locked_desktop(browser, tmp_path) -> Iterator[Console]:
    """The console against a stage that wants an API key."""
    with live_server(tmp_path / "data", env={"FACEPRINT_API_KEY": API_KEY}) as server:
        console = Console(browser, server, DESKTOP, "desktop")
        yield console
        console.close()


@pytest.fixture
def wary_desktop(browser, tmp_path) -> Iterator[Console]:
    """The console against a stage whose strangers come as close as a large
    archive's do (its stranger model set: FACEPRINT_STRANGER_SIMILARITY)."""
    with live_server(tmp_path / "data", env={"FACEPRINT_STRANGER_SIMILARITY": "88,2"}) as server:
        console = Console(browser, server, DESKTOP, "desktop")
        yield console
        console.close()


@pytest.fixture
def phone(browser, server) -> Iterator[Console]:
    console = Console(browser, server, PHONE, "phone")
    yield console
    console.close()


def boxes(scope) -> int:
    return scope.locator(".box").count()


def assert_image_shown(img) -> None:
    expect(img).to_have_attribute("src", re.compile(r"^blob:"))
    assert img.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0


def person_in(photo: str) -> str:
    (person,) = people()[photo]
    return person


@pytest.mark.slow
def test_indexes_named_photos_and_finds_them_by_another_photo(locked_desktop):
    desktop = locked_desktop
    page = desktop.page
    expect(page.locator("#api-status")).to_contain_text("Send the API key")
    page.get_by_label("API key").fill(API_KEY)
    first_keyed = len(desktop.api_requests)
    expect(page.locator("#api-status")).to_contain_text("local stage")
    desktop.index(INDEXED)
    for photo in INDEXED:
        person_in(photo)  # one person each
        item = desktop.item(photo)
        expect(item.locator(".file-status")).to_have_text("Indexed: 1 face found.")
        expect(item.locator(".box")).to_have_count(1)
    desktop.screenshot("index")

    desktop.search(QUERY)
    query = page.locator(".search-query")
    expect(query.locator(".box")).to_have_count(1)
    wanted = [INDEXED[photo] for photo in INDEXED if person_in(photo) == person_in(QUERY)]
    matches = page.locator(".match")
    expect(matches.locator(".match-name")).to_have_text(wanted)
    expect(matches.locator(".trust")).to_have_text(["confident"] * len(wanted))
    for i in range(len(wanted)):
        expect(matches.nth(i).locator(".box")).to_have_count(1)
        assert_image_shown(matches.nth(i).locator("img"))
    expect(query.locator(".box-label")).to_have_text(wanted[:1])
    desktop.screenshot("search")

    assert page.evaluate("sessionStorage.getItem('faceprint.apiKey')") == API_KEY
    api_calls = desktop.api_requests[first_keyed:]
    assert any("/index/" in r.url for r in api_calls) and any("/search" in r.url for r in api_calls)
    assert {r.url: r.headers.get("x-api-key") for r in api_calls if r.headers.get("x-api-key") != API_KEY} == {}
    page.reload()  # the key stays for the tab's session
    expect(page.get_by_label("API key")).to_have_value(API_KEY)
    expect(page.locator("#api-status")).to_contain_text("2 photos")
    # Only the keyless /info on the first load was refused (and logged by the browser).
    assert desktop.problems == ["error: Failed to load resource: the server responded with a status of 403 (Forbidden)"]


@pytest.mark.slow
def test_a_possible_name_is_shown_apart_from_a_confident_one(wary_desktop):
    desktop = wary_desktop
    desktop.index(INDEXED)
    desktop.search(QUERY)
    page = desktop.page
    (name,) = [INDEXED[photo] for photo in INDEXED if person_in(photo) == person_in(QUERY)]
    match = page.locator(".match")
    expect(match).to_have_count(1)
    expect(match).to_have_class(re.compile(r"\bis-possible\b"))
    expect(match.locator(".match-name")).to_have_text(name)
    expect(match.locator(".trust")).to_have_text("possible")
    hint = re.compile(r"^about 1 in \d+ searches would find a stranger")
    expect(match.locator(".match-trust .hint")).to_have_text(hint)
    expect(page.locator(".search-query .box-label")).to_have_text(f"{name}?")
    expect(page.locator(".search-query .file-status")).to_contain_text("1 match (0 confident, 1 possible)")
    desktop.screenshot("search-possible")
    # The API's own default names no one there: the console asked for every match from 80.
    default = api_json(desktop.server, "POST", "/search", photos.photo(QUERY), "image/jpeg")
    assert default["matchedFaces"] == [] and default["threshold"] > 90
    assert desktop.problems == []


@pytest.mark.slow
def test_every_face_gets_its_own_box_colour_and_matches(desktop):
    desktop.index(INDEXED)
    desktop.search(GROUP, every_face=True, dropped=True)
    page = desktop.page
    in_group = people()[GROUP]
    expect(page.locator(".search-query .box")).to_have_count(len(in_group))
    sections = page.locator(".query-face")
    expect(sections).to_have_count(len(in_group))
    colours = {sections.nth(i).evaluate("s => s.style.getPropertyValue('--box-color')") for i in range(len(in_group))}
    assert len(colours) == len(in_group)
    found = sorted(page.locator(".match-name").all_inner_texts())
    assert found == sorted(name for photo, name in INDEXED.items() if person_in(photo) in in_group)
    expect(page.locator(".match .box")).to_have_count(len(found))
    expect(page.locator(".no-match")).to_have_count(len(in_group) - len(found))
    desktop.screenshot("search-every-face")
    assert desktop.problems == []


@pytest.mark.slow
def test_browses_opens_and_deletes_with_confirmation(desktop):
    desktop.index(INDEXED)
    page = desktop.page
    # One photo a page, so that "Load more" follows the API's next token.
    page.route(
        re.compile(r"/images\?"), lambda route: route.continue_(url=re.sub(r"limit=\d+", "limit=1", route.request.url))
    )
    desktop.tab("Browse")
    cards = page.locator(".card")
    expect(cards).to_have_count(1)
    page.get_by_role("button", name="Load more").click()
    expect(cards).to_have_count(len(INDEXED))
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    for photo, name in INDEXED.items():
        card = page.locator(f'.card[data-key="{photo}"]')
        expect(card.locator(".title")).to_have_text(name)
        expect(card.locator(".face-count")).to_have_text("1 face")
        expect(card.locator(".status")).to_have_text("indexed")
        assert_image_shown(card.locator("img"))
    desktop.screenshot("browse")

    keanu = "Keanu-Reeves.jpg"
    page.locator(f'.card[data-key="{keanu}"] button').click()
    detail = page.locator("#browse-detail")
    expect(detail.get_by_role("heading", name=INDEXED[keanu])).to_be_visible()
    expect(detail.locator(".box")).to_have_count(1)
    assert_image_shown(detail.locator(".photo img"))
    desktop.screenshot("browse-photo")

    detail.get_by_role("button", name="Delete face 1").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    desktop.screenshot("browse-confirm")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(detail.locator(".box")).to_have_count(1)

    detail.get_by_role("button", name="Delete face 1").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(detail.locator(".box")).to_have_count(0)
    expect(detail.locator(".face-count")).to_have_text("0")
    status, body, _ = desktop.server.request("GET", f"/images/{keanu}")
    assert status == 200 and body["faces"] == []

    detail.get_by_role("button", name="Delete photo").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(cards).to_have_count(len(INDEXED) - 1)
    expect(page.locator(f'.card[data-key="{keanu}"]')).to_have_count(0)
    assert desktop.server.request("GET", f"/images/{keanu}")[0] == 404
    assert desktop.problems == []


@pytest.mark.slow
def test_shows_the_apis_own_message_next_to_the_file_that_caused_it(desktop, tmp_path):
    status, body, _ = desktop.server.request(
        "PUT", "/index/notes.jpg", body=b"not a photo", headers={"Content-Type": "image/jpeg"}
    )
    assert 400 <= status < 500
    page = desktop.page
    page.set_input_files(
        "#index-files",
        [
            {"name": "Keanu-Reeves.jpg", "mimeType": "image/jpeg", "buffer": photos.photo("Keanu-Reeves.jpg")},
            {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"},
        ],
    )
    page.locator("#index-submit").click()
    expect(desktop.item("notes.jpg").locator(".file-status")).to_have_text(body["message"])
    expect(desktop.item("notes.jpg").locator(".file-status")).to_have_class(re.compile("error"))
    expect(desktop.item("Keanu-Reeves.jpg").locator(".file-status")).to_have_text("Indexed: 1 face found.")
    expect(page.locator("#index-submit")).to_have_text("Index 1 photo")  # the failed one can be retried
    desktop.screenshot("index-error")
    # The browser logs the refused upload itself; nothing else may be logged.
    (refused,) = desktop.problems
    assert refused.startswith(f"error: Failed to load resource: the server responded with a status of {status} ")


@pytest.mark.slow
def test_works_at_phone_width_and_from_the_keyboard(phone):
    page = phone.page
    phone.assert_fits_the_width()
    page.get_by_role("tab", name="Index").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Search")).to_be_focused()
    expect(page.locator("#view-search")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.locator("#search-file")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("tab", name="Search")).to_be_focused()
    page.keyboard.press("Home")
    expect(page.get_by_role("tab", name="Index")).to_be_focused()

    phone.index(INDEXED)
    phone.assert_fits_the_width()
    phone.screenshot("index")
    phone.search(QUERY)
    expect(page.locator(".search-query .box")).to_have_count(1)
    expect(page.locator(".match .box")).to_have_count(1)
    phone.assert_fits_the_width()
    phone.screenshot("search")
    phone.tab("Browse")
    expect(page.locator(".card")).to_have_count(len(INDEXED))
    phone.assert_fits_the_width()
    phone.screenshot("browse")
    page.locator(".card button").first.press("Enter")
    expect(page.locator("#browse-detail .box")).to_have_count(1)
    phone.assert_fits_the_width()
    phone.screenshot("browse-photo")
    assert phone.problems == []


@pytest.mark.slow
def test_a_bare_gateway_refusal_points_at_the_key_field(browser, server):
    """On AWS, API Gateway itself refuses a keyless call with {"message": "Forbidden"}."""
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        page.route(
            re.compile(r"/info$"),
            lambda route: route.fulfill(status=403, content_type="application/json", body='{"message": "Forbidden"}'),
        )
        page.goto(server.url + "/")
        expect(page.locator("#api-status")).to_have_text("API: Forbidden (this stage needs the API key above)")
    finally:
        context.close()


# ---------- People ----------


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Iterator[Server]:
    """One server for the module's people tests, its photos indexed once through the API."""
    with live_server(tmp_path_factory.mktemp("archive") / "data") as server:
        for name in ARCHIVE:
            assert put_photo(server, name, photos.photo(name))["image"]["status"] == "indexed"
        assert put_photo(server, DARK, imagegen.darkened("Keanu-Reeves.jpg", 0.08))["image"]["status"] == "no_faces"
        yield server


@pytest.fixture
def people_archive(archive) -> Server:
    """The archive with nobody named (a test before may have named some)."""
    for person in api_json(archive, "GET", "/people?limit=1000")["people"]:
        api_json(archive, "DELETE", f"/people/{person['personId']}")
    return archive


@pytest.fixture
def people_desktop(browser, people_archive) -> Iterator[Console]:
    console = Console(browser, people_archive, DESKTOP, "desktop")
    yield console
    console.close()


@pytest.fixture
def people_phone(browser, people_archive) -> Iterator[Console]:
    console = Console(browser, people_archive, PHONE, "phone")
    yield console
    console.close()


def put_photo(server: Server, name: str, data: bytes) -> dict:
    return api_json(server, "PUT", f"/index/{name}", data, "image/jpeg", want=201)


def api_json(server: Server, method: str, path: str, body=None, content_type="application/json", want=200):
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    status, reply, _ = server.request(method, path, body=body, headers={"Content-Type": content_type})
    assert status == want, reply
    return reply


def expected_groups() -> list[tuple[str, int]]:
    """Who the suggested groups of the archive are, largest first: each
    person seen in more than one photo."""
    seen = Counter(person for name in ARCHIVE for person in people()[name])
    return sorted(((person, n) for person, n in seen.items() if n > 1), key=lambda group: -group[1])


def assert_thumbnail(img) -> None:
    """A face cut out of its stored photo."""
    assert_image_shown(img)
    assert img.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [THUMB_PX, THUMB_PX]


def photos_of(scope) -> list[str]:
    """The photos that a group's or person's face thumbnails come from (their alt says)."""
    images = scope.locator("img")
    for i in range(images.count()):
        expect(images.nth(i)).to_have_attribute("alt", re.compile(r"\(.+\)$"))
    return sorted(re.search(r"\(([^()]+)\)$", alt).group(1) for alt in images.evaluate_all("i => i.map(x => x.alt)"))


@pytest.mark.slow
def test_names_a_suggested_person_and_follows_them_everywhere(people_desktop):
    desktop, server = people_desktop, people_desktop.server
    page = desktop.page
    faces_before = api_json(server, "GET", "/info")["faces"]
    desktop.tab("People")
    expect(page.locator("#people-status")).to_contain_text("Nobody is named yet")

    # Suggestions: one group per person seen twice, largest first, each face cut out of its photo.
    page.get_by_role("button", name="Find suggestions").click()
    groups = expected_groups()
    cards = page.locator(".suggestion")
    expect(cards).to_have_count(len(groups))
    (biggest, size), second = groups[0], groups[1]
    first = cards.first
    expect(first.get_by_role("heading")).to_have_text(f"A group of {size} faces")
    assert photos_of(first.locator(".face-strip")) == sorted(photos.photos_with(biggest) & set(ARCHIVE))
    for i in range(size):
        assert_thumbnail(first.locator(".face-strip img").nth(i))

    # Accept it with a name in one step: a person with those faces.
    first.get_by_label("Who is this?").fill("Lawrence")
    first.get_by_role("button", name="Add person").click()
    expect(page.locator("#suggestions-status")).to_have_text(f"Lawrence now has {size} faces ({size} added).")
    expect(cards).to_have_count(len(groups) - 1)
    card = page.locator('.person-card[data-person="lawrence"]')
    expect(card.locator(".person-name")).to_have_text("Lawrence")
    expect(card.locator(".face-count")).to_have_text(f"{size} faces")
    assert_thumbnail(card.locator("img"))
    (person,) = api_json(server, "GET", "/people")["people"]
    assert (person["personId"], person["name"], person["faceCount"]) == ("lawrence", "Lawrence", size)

    # Dismissing a group only hides it here.
    second_card = cards.first
    second_id = second_card.get_attribute("data-suggestion")
    second_card.get_by_role("button", name=f"Dismiss a group of {second[1]} faces").click()
    expect(cards).to_have_count(len(groups) - 2)
    expect(page.locator(f'.suggestion[data-suggestion="{second_id}"]')).to_have_count(0)
    expect(page.get_by_role("button", name="Show 1 dismissed")).to_be_visible()
    listed = api_json(server, "GET", "/people/suggestions")["suggestions"]
    assert second_id in [s["suggestionId"] for s in listed] and len(listed) == len(groups) - 1
    desktop.screenshot("people")

    # Open the person: rename them, and take a face from them.
    card.locator("button").click()
    detail = page.locator("#person-detail")
    expect(detail.get_by_role("heading", name="Lawrence")).to_be_visible()
    expect(detail.locator(".person-face")).to_have_count(size)
    detail.get_by_role("textbox", name="Name").fill("Larry")
    detail.get_by_role("button", name="Rename").click()
    expect(detail.get_by_role("heading", name="Larry")).to_be_visible()
    expect(detail.get_by_role("status").filter(has_text="Renamed")).to_have_text("Renamed to Larry.")
    assert api_json(server, "GET", "/people/lawrence")["person"]["name"] == "Larry"
    taken = detail.locator(".person-face").first.get_attribute("data-face")
    detail.get_by_role("button", name="Face 1 is not Larry").click()
    expect(detail.locator(".person-face")).to_have_count(size - 1)
    expect(detail.locator(".face-count")).to_have_text(str(size - 1))
    expect(detail.locator(f'.person-face[data-face="{taken}"]')).to_have_count(0)
    for i in range(size - 1):
        assert_thumbnail(detail.locator(".person-face img").nth(i))
    taken_face = api_json(server, "GET", f"/faces/{taken}")["face"]
    assert "UserId" not in taken_face
    desktop.screenshot("people-person")
    detail.get_by_role("button", name="← All people").click()
    expect(card.locator(".face-count")).to_have_text(f"{size - 1} faces")

    # Browse: "this is..." gives the face back; a face unlike his is refused, in words;
    # a new person is made from a name.
    desktop.tab("Browse")
    this_is(page, taken_face["imageKey"], taken, "Larry")
    browsed = page.locator("#browse-detail")
    expect(browsed.get_by_role("status")).to_have_text("Face 1 is now Larry.")
    expect(browsed.locator(f'li[data-face="{taken}"] .face-person')).to_have_text(" · Larry")
    assert api_json(server, "GET", "/people/lawrence")["person"]["faceCount"] == size
    browsed.get_by_role("button", name="← All photos").click()
    (avril,) = api_json(server, "GET", "/faces?image=Avril-Lavigne.jpg")["faces"]
    this_is(page, "Avril-Lavigne.jpg", avril["FaceId"], "Larry")
    refusal = browsed.locator(f'li[data-face="{avril["FaceId"]}"] .error-message')
    unlike = r"it does not look enough like Larry’s other faces \(\d+"
    expect(refusal).to_have_text(re.compile(r"^Face 1 was not added to Larry: " + unlike))
    assert "UserId" not in api_json(server, "GET", f"/faces/{avril['FaceId']}")["face"]
    desktop.screenshot("browse-this-is")
    this_is(page, "Avril-Lavigne.jpg", avril["FaceId"], "A new person…", new_name="Avril Lavigne", opened=True)
    expect(browsed.get_by_role("status")).to_have_text("Face 1 is now Avril Lavigne.")
    made = api_json(server, "GET", "/people/avril-lavigne")
    assert (made["person"]["name"], [f["FaceId"] for f in made["faces"]]) == ("Avril Lavigne", [avril["FaceId"]])

    # Search: who it is, and his name on the matches that are his faces.
    desktop.search(QUERY)
    found = page.locator(".people-found-list li")
    expect(found).to_have_count(1)
    expect(found.locator(".person-name")).to_have_text("Larry")
    expect(found.locator(".hint")).to_have_text(re.compile(r"^\d+\.\d% similar$"))
    searched = api_json(server, "POST", "/search", photos.photo(QUERY), "image/jpeg")
    his = [m for m in searched["matches"] if m.get("personId") == "lawrence"]
    assert his
    expect(page.locator('.match.is-person[data-person="lawrence"] .match-name')).to_have_text(
        ["Larry person"] * len(his)
    )
    desktop.screenshot("search-people")

    # Delete him (after the confirmation): his faces stay indexed.
    desktop.tab("People")
    card.locator("button").click()
    detail.get_by_role("button", name="Delete person").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text(f"Their {size} faces stay indexed")
    dialog.get_by_role("button", name="Delete").click()
    expect(card).to_have_count(0)
    expect(page.locator("#people-status")).to_contain_text("Deleted Larry;")
    assert server.request("GET", "/people/lawrence")[0] == 404
    assert api_json(server, "GET", "/info")["faces"] == faces_before
    assert "UserId" not in api_json(server, "GET", f"/faces/{taken}")["face"]
    assert desktop.problems == []


def this_is(page: Page, key: str, face_id: str, choice: str, new_name: str = "", opened: bool = False) -> None:
    """In Browse, open the photo and say whose its face is."""
    if not opened:
        page.locator(f'.card[data-key="{key}"] button').click()
    face = page.locator(f'#browse-detail li[data-face="{face_id}"]')
    form = face.locator("form.this-is")
    if not form.is_visible():
        face.get_by_role("button", name=re.compile(r"this is…$")).click()
    select = form.get_by_label(re.compile(r"^Who is face \d+\?"))
    expect(select).to_be_enabled()
    select.select_option(label=choice)
    if new_name:
        form.get_by_label("Name of the new person").fill(new_name)
    form.get_by_role("button", name="Save").click()


@pytest.mark.slow
def test_browse_draws_the_faces_the_engine_declined_dashed_with_why(browser, archive):
    desktop = Console(browser, archive, DESKTOP, "desktop")
    try:
        page = desktop.page
        desktop.tab("Browse")
        page.locator(f'.card[data-key="{DARK}"] button').click()
        detail = page.locator("#browse-detail")
        expect(detail.locator(".box.declined")).to_have_count(1)
        expect(detail.locator(".box:not(.declined)")).to_have_count(0)
        assert detail.locator(".box.declined").evaluate("b => getComputedStyle(b).borderTopStyle") == "dashed"
        expect(detail.get_by_role("list", name="Declined faces")).to_have_text("Declined face 1: too dark")
        expect(detail.locator(".declined-count")).to_have_text("1")
        expect(detail.get_by_text("No face is indexed in this photo.")).to_be_visible()
        desktop.screenshot("browse-declined")
        assert desktop.problems == []
    finally:
        desktop.close()


@pytest.mark.slow
def test_people_at_phone_width_a_group_joins_who_it_looks_like_and_refusals_show_by_the_face(people_phone):
    phone, server = people_phone, people_phone.server
    page = phone.page
    group = api_json(server, "POST", "/people/suggestions")["suggestions"][0]
    api_json(server, "PUT", "/people/someone", {"name": "Someone"}, want=201)
    api_json(server, "POST", "/people/someone/faces", {"faceIds": group["faceIds"][:1]})
    page.get_by_role("tab", name="Index").focus()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="People")).to_be_focused()
    expect(page.locator("#view-people")).to_be_visible()
    card = page.locator('.person-card[data-person="someone"]')
    expect(card.locator(".face-count")).to_have_text("1 face")

    # The rest of the group, grouped again, looks like them: add it to them in one step.
    page.get_by_role("button", name="Find suggestions").click()
    add = page.get_by_role("button", name="Add to Someone")
    suggestion = page.locator(".suggestion", has=add)
    expect(suggestion.locator(".nearest")).to_have_text(re.compile(r"^Looks like Someone \(\d+\.\d%\)\.$"))
    add.click()
    rest = group["size"] - 1
    expect(page.locator("#suggestions-status")).to_have_text(f"Someone now has {group['size']} faces ({rest} added).")
    expect(page.locator(".suggestion")).to_have_count(len(expected_groups()) - 1)
    expect(card.locator(".face-count")).to_have_text(f"{group['size']} faces")
    assert_thumbnail(card.locator("img"))
    phone.assert_fits_the_width()
    phone.screenshot("people")

    card.locator("button").press("Enter")
    detail = page.locator("#person-detail")
    expect(detail.get_by_role("button", name="← All people")).to_be_focused()
    expect(detail.locator(".person-face")).to_have_count(group["size"])
    for i in range(group["size"]):
        assert_thumbnail(detail.locator(".person-face img").nth(i))
    phone.assert_fits_the_width()
    phone.screenshot("people-person")

    # Deleted elsewhere meanwhile: the API's own message, next to the face it was about.
    api_json(server, "DELETE", "/people/someone")
    status, body, _ = server.request("DELETE", f"/people/someone/faces/{group['faceIds'][0]}")
    detail.get_by_role("button", name="Face 1 is not Someone").click()
    expect(detail.locator(".person-face").first.locator(".error-message")).to_have_text(f"Face 1: {body['message']}")
    phone.assert_fits_the_width()
    (refused,) = phone.problems
    assert refused.startswith(f"error: Failed to load resource: the server responded with a status of {status} ")


@pytest.mark.slow
def test_photos_and_face_thumbnails_follow_the_apis_redirect_to_s3(browser, people_archive, tmp_path):
    """On AWS a stored photo is a 307 to a presigned S3 link: the page's CSP
    lets fetch follow it, with the key (S3's CORS rule answers the preflight)."""
    server = people_archive
    (keanu,) = api_json(server, "GET", "/faces?image=Keanu-Reeves.jpg")["faces"]
    api_json(server, "PUT", "/people/keanu", {"name": "Keanu Reeves"}, want=201)
    api_json(server, "POST", "/people/keanu/faces", {"faceIds": [keanu["FaceId"]]})

    def stored(key: str) -> bytes:
        return server.request("GET", f"/images/{quote(key)}/file", headers={"Accept": "image/*"})[1]

    def to_s3(route) -> None:
        key = route.request.url.split("/images/")[1].removesuffix("/file")
        location = f"{presigned_links.BUCKET_URL}/{key}?X-Amz-Expires=300&X-Amz-Signature=test"
        route.fulfill(status=307, headers={"Location": location, "Cache-Control": "no-store"})

    def as_served_on_aws(route) -> None:
        """The page with the CSP an AWS stage whose bucket is the stand-in's sends."""
        page = route.fetch()
        bucket, region = "faceprint-photos", "eu-west-1"  # presigned_links.BUCKET_URL
        aws = Settings(stage="dev", engine="rekognition", data_dir=tmp_path, bucket=bucket, region=region)
        route.fulfill(response=page, headers={**page.headers, "content-security-policy": content_security_policy(aws)})

    with presigned_links.serving(stored, tmp_path) as s3:
        # The page is served through the route above, from no address: to Chromium a public page,
        # which its Local Network Access checks keep from the stand-in on loopback.
        args = [*CHROMIUM_ARGS, *presigned_links.chromium_args(s3.port), "--disable-features=LocalNetworkAccessChecks"]
        aws_browser = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=args)
        console = Console(aws_browser, server, DESKTOP, "desktop")
        try:
            page = console.page
            page.route(re.compile(r"/images/[^/?]+/file$"), to_s3)
            page.route(server.url + "/", as_served_on_aws)
            page.reload()
            page.get_by_label("API key").fill(API_KEY)  # this stage takes no key, but S3 must accept the header
            console.tab("Browse")
            cards = page.locator(".card")
            expect(cards).to_have_count(len(ARCHIVE) + 1)
            for i in range(len(ARCHIVE) + 1):
                assert_image_shown(cards.nth(i).locator("img"))
            console.tab("People")
            assert_thumbnail(page.locator('.person-card[data-person="keanu"] img'))
            assert sorted(key for key, _ in s3.served) == sorted([*ARCHIVE, DARK])
            assert {api_key for _, api_key in s3.served} == {API_KEY}
            assert console.problems == []
        finally:
            console.close()
            aws_browser.close()
