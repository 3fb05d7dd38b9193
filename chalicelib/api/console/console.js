// Faceprint console: index, search and browse faces through the public
// HTTP API only. Plain JavaScript, no build step, nothing from elsewhere.
"use strict";

(() => {
  const KEY_STORAGE = "faceprint.apiKey";
  const PAGE_SIZE = 24;
  const PENDING_POLL_MS = 1500;
  const PENDING_POLL_LIMIT = 40;
  // Box colours for the faces of a query photo; each matched face gets its query face's colour.
  const COLORS = ["#22c55e", "#f59e0b", "#38bdf8", "#f472b6", "#a78bfa", "#2dd4bf", "#f87171", "#facc15"];
  // Chalice and API Gateway send a photo as binary only when Accept names a binary type first.
  const PHOTO_ACCEPT = "image/jpeg, image/png, */*;q=0.8";

  const $ = (id) => document.getElementById(id);

  // ---------- DOM helpers ----------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name === "style") for (const [prop, v] of Object.entries(value)) node.style.setProperty(prop, v);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name in node && typeof value !== "string") node[name] = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function plural(count, word, words = `${word}s`) {
    return `${count} ${count === 1 ? word : words}`;
  }

  function formatBytes(size) {
    if (size < 1024) return `${size} B`;
    if (size < 1024 * 1024) return `${(size / 1024).toFixed(0)} KB`;
    return `${(size / 1024 / 1024).toFixed(1)} MB`;
  }

  function percent(value) {
    return `${Number(value).toFixed(1)}%`;
  }

  // ---------- The API ----------

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function apiKey() {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  }

  function apiUrl(path) {
    // Relative to <base href>, so a stage prefix such as /api/ is kept.
    return new URL(path, document.baseURI).href;
  }

  function requestHeaders(extra = {}) {
    const headers = { ...extra };
    const key = apiKey();
    if (key) headers["x-api-key"] = key;
    return headers;
  }

  function errorFromBody(status, statusText, text) {
    let message = statusText || `The request failed with HTTP ${status}.`;
    let code = `HTTP ${status}`;
    try {
      const body = JSON.parse(text);
      // The API's own {"error", "message"}; API Gateway's {"message"}.
      if (body && typeof body.message === "string" && body.message) message = body.message;
      if (body && typeof body.error === "string") code = body.error;
    } catch (_) {
      // Not JSON (a proxy's page): keep the status line.
    }
    // API Gateway's own refusal is a bare "Forbidden": say where the key goes.
    if (status === 403 && !apiKey() && code === `HTTP ${status}`) message += " (this stage needs the API key above)";
    return new ApiError(message, status, code);
  }

  async function api(method, path, { body, headers = {}, accept = "application/json" } = {}) {
    let response;
    try {
      response = await fetch(apiUrl(path), { method, body, headers: requestHeaders({ Accept: accept, ...headers }) });
    } catch (e) {
      throw new ApiError(`Could not reach the API: ${e.message}`, 0, "NetworkError");
    }
    if (!response.ok) throw errorFromBody(response.status, response.statusText, await response.text());
    return response;
  }

  async function apiJson(method, path, options) {
    return (await api(method, path, options)).json();
  }

  // A key with "/" (a photo in a folder of the bucket) goes in its b64: form,
  // which API Gateway routes as one path segment (it does not route %2F).
  function keySegment(key) {
    if (!key.includes("/")) return encodeURIComponent(key);
    const bytes = new TextEncoder().encode(key);
    const text = btoa(String.fromCharCode(...bytes));
    return `b64:${text.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
  }

  function imagePath(key) {
    return `images/${keySegment(key)}`;
  }

  // PUT /index/{filename} through XMLHttpRequest: fetch cannot report upload progress.
  function uploadPhoto(file, name, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", apiUrl(`index/${encodeURIComponent(file.name)}`));
      const headers = requestHeaders({
        Accept: "application/json",
        "Content-Type": file.type || "application/octet-stream",
      });
      if (name) headers["x-amz-meta-name"] = name;
      try {
        for (const [header, value] of Object.entries(headers)) xhr.setRequestHeader(header, value);
      } catch (_) {
        reject(new ApiError("This name cannot be sent in an HTTP header: use plain ASCII letters.", 0, "BadName"));
        return;
      }
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      });
      xhr.upload.addEventListener("load", () => onProgress(1));
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(JSON.parse(xhr.responseText));
          } catch (e) {
            reject(new ApiError(`The API's reply is not JSON: ${e.message}`, xhr.status, "BadReply"));
          }
        } else {
          reject(errorFromBody(xhr.status, xhr.statusText, xhr.responseText));
        }
      });
      xhr.addEventListener("error", () => reject(new ApiError("Could not reach the API.", 0, "NetworkError")));
      xhr.send(file);
    });
  }

  // Photos of indexed images, as blob: URLs (an <img src> cannot send x-api-key
  // nor the Accept header the API needs). One fetch per key while it is shown.
  const photoUrls = new Map();

  function storedPhotoUrl(key) {
    if (!photoUrls.has(key)) {
      const url = api("GET", `${imagePath(key)}/file`, { accept: PHOTO_ACCEPT })
        .then((response) => response.blob())
        .then((blob) => URL.createObjectURL(blob));
      url.catch(() => photoUrls.delete(key));
      photoUrls.set(key, url);
    }
    return photoUrls.get(key);
  }

  function forgetPhoto(key) {
    const url = photoUrls.get(key);
    photoUrls.delete(key);
    if (url) url.then(URL.revokeObjectURL, () => {});
  }

  // ---------- Photos with face boxes ----------

  // boxes: [{box: {Left, Top, Width, Height} as ratios, color, label}]
  function drawBoxes(figure, boxes) {
    figure.querySelectorAll(".box").forEach((node) => node.remove());
    for (const { box, color, label } of boxes) {
      if (!box) continue;
      const left = Math.max(0, box.Left);
      const top = Math.max(0, box.Top);
      const right = Math.min(1, box.Left + box.Width);
      const bottom = Math.min(1, box.Top + box.Height);
      const node = el("div", {
        className: top < 0.08 ? "box label-below" : "box",
        style: {
          left: `${left * 100}%`,
          top: `${top * 100}%`,
          width: `${(right - left) * 100}%`,
          height: `${(bottom - top) * 100}%`,
          ...(color ? { "--box-color": color } : {}),
        },
      });
      if (label) node.append(el("span", { className: "box-label", text: label }));
      figure.append(node);
    }
    figure.dataset.boxes = String(figure.querySelectorAll(".box").length);
  }

  // src: a URL or a promise of one (a stored photo still loading).
  function photoFigure(src, alt, boxes = []) {
    const figure = el("div", { className: "photo" });
    const img = el("img", { alt });
    img.addEventListener("error", () => {
      figure.classList.remove("loading");
      figure.classList.add("unreadable");
      img.replaceWith(el("span", { className: "no-preview", text: "No preview: the browser cannot read this file." }));
    });
    figure.append(img);
    drawBoxes(figure, boxes);
    if (typeof src === "string") {
      img.src = src;
    } else {
      figure.classList.add("loading");
      src.then(
        (url) => {
          img.src = url;
          figure.classList.remove("loading");
        },
        (error) => {
          figure.replaceWith(el("p", { className: "error-message", text: `${alt}: ${error.message}` }));
        },
      );
    }
    return figure;
  }

  function facesAsBoxes(faces, color) {
    return faces.map((face, i) => ({ box: face.BoundingBox, color, label: String(i + 1) }));
  }

  // ---------- Drop zones ----------

  function acceptDrops(zone, onFiles) {
    let depth = 0;
    zone.addEventListener("dragenter", (e) => {
      e.preventDefault();
      depth += 1;
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragover", (e) => e.preventDefault());
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      zone.classList.remove("dragging");
      if (e.dataTransfer && e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
    });
  }

  // A photo dropped beside a zone must not replace the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  // ---------- Confirmation ----------

  function confirmDelete(title, text) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
      dialog.showModal();
    });
  }

  // ---------- Header: API key and status ----------

  async function refreshInfo() {
    const status = $("api-status");
    try {
      const info = await apiJson("GET", "info");
      status.classList.remove("error");
      status.textContent = `${info.stage} stage · ${info.engine} engine · ${plural(info.images, "photo")} · ${plural(info.faces, "face")}`;
    } catch (e) {
      status.classList.add("error");
      status.textContent = `API: ${e.message}`;
    }
  }

  function setUpApiKey() {
    const input = $("api-key");
    input.value = apiKey();
    let timer = null;
    input.addEventListener("input", () => {
      const key = input.value.trim();
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
      clearTimeout(timer);
      timer = setTimeout(refreshInfo, 400);
    });
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      refreshInfo();
      if (browse.loaded) loadBrowse(true);
    });
  }

  // ---------- Tabs ----------

  const VIEWS = ["index", "search", "browse"];

  function showView(name, focusTab = false) {
    for (const view of VIEWS) {
      const tab = $(`tab-${view}`);
      const selected = view === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(`view-${view}`).hidden = !selected;
      if (selected && focusTab) tab.focus();
    }
    const url = new URL(location.href);
    url.hash = name;
    history.replaceState(null, "", url);
    if (name === "browse" && !browse.loaded) loadBrowse(true);
  }

  function setUpTabs() {
    for (const view of VIEWS) {
      const tab = $(`tab-${view}`);
      tab.addEventListener("click", () => showView(view));
      tab.addEventListener("keydown", (e) => {
        const at = VIEWS.indexOf(view);
        const next = {
          ArrowRight: VIEWS[(at + 1) % VIEWS.length],
          ArrowLeft: VIEWS[(at + VIEWS.length - 1) % VIEWS.length],
          Home: VIEWS[0],
          End: VIEWS[VIEWS.length - 1],
        }[e.key];
        if (next) {
          e.preventDefault();
          showView(next, true);
        }
      });
    }
    const start = location.hash.slice(1);
    showView(VIEWS.includes(start) ? start : "index");
  }

  // ---------- Index ----------

  const indexItems = [];

  function addIndexFiles(files) {
    for (const file of files) {
      const preview = URL.createObjectURL(file);
      const item = { file, preview, state: "ready" };
      item.figure = photoFigure(preview, file.name);
      item.name = el("input", {
        type: "text",
        className: "file-label",
        autocomplete: "off",
        placeholder: "e.g. Jane Doe",
        maxLength: 200,
      });
      item.progress = el("progress", { max: 100, value: 0, hidden: true, "aria-label": `Upload of ${file.name}` });
      item.status = el("p", { className: "file-status", role: "status", text: "Ready to index." });
      item.remove = el("button", {
        type: "button",
        className: "link",
        text: "Remove",
        "aria-label": `Remove ${file.name} from the list`,
        onclick: () => removeIndexItem(item),
      });
      item.node = el(
        "li",
        { className: "file-item", "data-file": file.name },
        el("div", { className: "file-preview" }, item.figure),
        el(
          "div",
          { className: "file-fields" },
          el("p", { className: "file-name" }, file.name, " ", el("span", { className: "hint", text: formatBytes(file.size) })),
          el("label", {}, "Name (optional)", item.name),
          item.progress,
          item.status,
          el("div", {}, item.remove),
        ),
      );
      indexItems.push(item);
      $("index-list").append(item.node);
    }
    updateIndexForm();
  }

  function removeIndexItem(item) {
    indexItems.splice(indexItems.indexOf(item), 1);
    URL.revokeObjectURL(item.preview);
    item.node.remove();
    updateIndexForm();
    $("index-files").focus();
  }

  function updateIndexForm() {
    const waiting = indexItems.filter((item) => item.state === "ready" || item.state === "error").length;
    const busy = indexItems.some((item) => item.state === "uploading");
    $("index-form").hidden = indexItems.length === 0;
    const submit = $("index-submit");
    submit.disabled = busy || waiting === 0;
    submit.textContent = busy ? "Indexing…" : waiting ? `Index ${plural(waiting, "photo")}` : "All indexed";
    $("index-clear").disabled = busy;
  }

  function setItemStatus(item, text, kind = "") {
    item.status.className = `file-status ${kind}`.trim();
    item.status.textContent = text;
  }

  function showIndexed(item, reply) {
    const { image, faces } = reply;
    drawBoxes(item.figure, facesAsBoxes(faces));
    if (image.status === "indexed") {
      setItemStatus(item, `Indexed: ${plural(faces.length, "face")} found.`, "ok");
    } else if (image.status === "no_faces") {
      setItemStatus(item, "Stored, but no face was found in it.", "ok");
    } else if (image.status === "failed") {
      setItemStatus(item, `Stored, but it could not be indexed: ${image.error || "the engine refused it"}`, "error");
    } else {
      setItemStatus(item, "Stored; finding faces…");
    }
  }

  async function indexOne(item) {
    const name = item.name.value.trim();
    item.state = "uploading";
    item.name.readOnly = true;
    item.remove.hidden = true;
    item.progress.hidden = false;
    item.progress.value = 0;
    setItemStatus(item, "Uploading…");
    updateIndexForm();
    try {
      let reply = await uploadPhoto(item.file, name, (done) => {
        item.progress.value = Math.round(done * 100);
        setItemStatus(item, done < 1 ? `Uploading… ${Math.round(done * 100)}%` : "Finding faces…");
      });
      forgetPhoto(item.file.name);
      showIndexed(item, reply);
      // On AWS the photo is indexed by its S3 event, a moment after the upload.
      for (let polls = 0; reply.image.status === "pending" && polls < PENDING_POLL_LIMIT; polls += 1) {
        await new Promise((resolve) => setTimeout(resolve, PENDING_POLL_MS));
        reply = await apiJson("GET", imagePath(item.file.name));
        showIndexed(item, reply);
      }
      item.state = "done";
    } catch (e) {
      item.state = "error";
      item.name.readOnly = false;
      item.remove.hidden = false;
      setItemStatus(item, e.message, "error");
    } finally {
      item.progress.hidden = true;
      updateIndexForm();
    }
  }

  async function indexAll(e) {
    e.preventDefault();
    const waiting = indexItems.filter((item) => item.state === "ready" || item.state === "error");
    for (const item of waiting) await indexOne(item);
    browse.loaded = false;
    refreshInfo();
  }

  function setUpIndex() {
    const input = $("index-files");
    input.addEventListener("change", () => {
      addIndexFiles([...input.files]);
      input.value = "";
    });
    acceptDrops($("index-drop"), addIndexFiles);
    $("index-form").addEventListener("submit", indexAll);
    $("index-clear").addEventListener("click", () => {
      for (const item of [...indexItems]) removeIndexItem(item);
    });
  }

  // ---------- Search ----------

  const search = { file: null, preview: null, run: 0 };

  // One shape for both replies: [{box, confidence, matches}] per query face.
  function queryFaces(reply) {
    if (Array.isArray(reply.searchedFaces)) {
      return reply.searchedFaces.map((face) => ({
        box: face.BoundingBox,
        confidence: face.Confidence,
        matches: face.matches || [],
      }));
    }
    const faces = reply.faces || {};
    if (!faces.SearchedFaceBoundingBox) return [];
    return [{ box: faces.SearchedFaceBoundingBox, confidence: faces.SearchedFaceConfidence, matches: reply.matches || [] }];
  }

  function matchCard(match, color) {
    const name = match.label || match.imageKey;
    return el(
      "li",
      { className: "match" },
      photoFigure(storedPhotoUrl(match.imageKey), `${name} (${match.imageKey})`, [
        { box: match.BoundingBox, color, label: percent(match.Similarity) },
      ]),
      el("p", { className: "match-name", text: name }),
      el("p", { className: "match-similarity", text: `${percent(match.Similarity)} similar · ${match.imageKey}` }),
    );
  }

  function queryFaceSection(face, index, color, many) {
    const title = many ? `Face ${index + 1}` : "Searched face";
    const count = face.matches.length ? plural(face.matches.length, "match", "matches") : "no match";
    return el(
      "section",
      { className: "query-face", style: { "--box-color": color }, "aria-label": title },
      el("h3", {}, el("span", { className: "swatch", "aria-hidden": "true" }), `${title} · ${count}`),
      face.matches.length
        ? el("ol", { className: "matches" }, face.matches.map((match) => matchCard(match, color)))
        : el("p", { className: "no-match", text: "No indexed face looks like this one." }),
    );
  }

  async function runSearch() {
    if (!search.file) return;
    const file = search.file;
    const all = $("search-all").checked;
    const run = ++search.run;
    const result = $("search-result");
    const figure = photoFigure(search.preview, file.name);
    const status = el("p", { className: "file-status", role: "status", text: `Searching with ${file.name}…` });
    result.replaceChildren(el("div", { className: "search-query" }, figure, status));
    let reply;
    try {
      reply = await apiJson("POST", all ? "search?faces=all" : "search", {
        body: file,
        headers: { "Content-Type": file.type || "application/octet-stream" },
      });
    } catch (e) {
      if (run !== search.run) return;
      status.className = "file-status error";
      status.textContent = `${file.name}: ${e.message}`;
      return;
    }
    if (run !== search.run) return;
    const faces = queryFaces(reply);
    const many = all || faces.length > 1;
    drawBoxes(
      figure,
      faces.map((face, i) => ({
        box: face.box,
        color: COLORS[i % COLORS.length],
        label: many ? String(i + 1) : face.matches[0] ? face.matches[0].label : "no match",
      })),
    );
    if (!faces.length) {
      status.textContent = `No face was found in ${file.name}.`;
      return;
    }
    const matched = faces.reduce((sum, face) => sum + face.matches.length, 0);
    status.textContent = `${file.name}: ${plural(faces.length, "face")} searched, ${plural(matched, "match", "matches")}.`;
    result.append(
      el(
        "div",
        { className: "search-matches" },
        faces.map((face, i) => queryFaceSection(face, i, COLORS[i % COLORS.length], many)),
      ),
    );
  }

  function searchWith(files) {
    const file = files[0];
    if (!file) return;
    if (search.preview) URL.revokeObjectURL(search.preview);
    search.file = file;
    search.preview = URL.createObjectURL(file);
    runSearch();
  }

  function setUpSearch() {
    const input = $("search-file");
    input.addEventListener("change", () => {
      searchWith([...input.files]);
      input.value = "";
    });
    acceptDrops($("search-drop"), searchWith);
    $("search-all").addEventListener("change", runSearch);
  }

  // ---------- Browse ----------

  const browse = { loaded: false, next: null, loading: false, cards: new Map(), opened: null };

  function imageTitle(image) {
    return (image.metadata && image.metadata.name) || image.key;
  }

  function statusBadge(status) {
    return el("span", { className: `status status-${status}`, text: status.replace("_", " ") });
  }

  function imageCard(image) {
    const title = imageTitle(image);
    const card = el(
      "li",
      { className: "card", "data-key": image.key },
      el(
        "button",
        { type: "button", className: "open", onclick: () => openImage(image.key) },
        el("div", { className: "thumb" }, photoFigure(storedPhotoUrl(image.key), title)),
        el(
          "span",
          { className: "meta" },
          el("span", { className: "title", text: title }),
          title !== image.key ? el("span", { className: "hint", text: image.key }) : null,
          el("span", {}, statusBadge(image.status), " ", el("span", { className: "face-count", text: plural(image.faceCount || 0, "face") })),
        ),
      ),
    );
    return card;
  }

  async function loadBrowse(reset) {
    if (browse.loading) return;
    browse.loading = true;
    const grid = $("browse-grid");
    const status = $("browse-status");
    const more = $("browse-more");
    if (reset) {
      browse.next = null;
      browse.cards.clear();
      grid.replaceChildren();
      closeImage(false);
    }
    status.classList.remove("error-message");
    status.textContent = "Loading…";
    more.disabled = true;
    try {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (browse.next) query.set("next", browse.next);
      const page = await apiJson("GET", `images?${query}`);
      for (const image of page.images) {
        if (browse.cards.has(image.key)) continue;
        const card = imageCard(image);
        browse.cards.set(image.key, card);
        grid.append(card);
      }
      browse.next = page.next || null;
      browse.loaded = true;
      status.textContent = browse.cards.size
        ? `${plural(browse.cards.size, "photo")}${browse.next ? " so far" : ""}.`
        : "No photo is indexed yet: add some in the Index tab.";
    } catch (e) {
      status.classList.add("error-message");
      status.textContent = e.message;
    } finally {
      more.hidden = !browse.next;
      more.disabled = false;
      browse.loading = false;
    }
  }

  function closeImage(focusCard = true) {
    const key = browse.opened;
    browse.opened = null;
    $("browse-detail").hidden = true;
    $("browse-detail").replaceChildren();
    $("browse-list").hidden = false;
    const card = key && browse.cards.get(key);
    if (focusCard && card) card.querySelector("button").focus();
  }

  function updateCard(image) {
    const old = browse.cards.get(image.key);
    if (!old) return;
    const card = imageCard(image);
    old.replaceWith(card);
    browse.cards.set(image.key, card);
  }

  async function openImage(key) {
    browse.opened = key;
    const detail = $("browse-detail");
    $("browse-list").hidden = true;
    detail.hidden = false;
    const back = el("button", { type: "button", text: "← All photos", onclick: () => closeImage() });
    detail.replaceChildren(el("div", { className: "actions" }, back), el("p", { role: "status", text: `Loading ${key}…` }));
    back.focus();
    let reply;
    try {
      reply = await apiJson("GET", imagePath(key));
    } catch (e) {
      detail.replaceChildren(el("div", { className: "actions" }, back), el("p", { className: "error-message", text: `${key}: ${e.message}` }));
      return;
    }
    if (browse.opened !== key) return;
    showImage(reply, back);
  }

  function showImage({ image, faces }, back) {
    const detail = $("browse-detail");
    const title = imageTitle(image);
    const message = el("p", { className: "error-message", role: "alert" });
    const heading = el("h3", { tabindex: "-1", text: title });
    const deletePhoto = el("button", {
      type: "button",
      className: "danger",
      text: "Delete photo",
      onclick: async () => {
        const sure = await confirmDelete("Delete this photo?", `Delete the photo “${image.key}” and its ${plural(faces.length, "face")}? This cannot be undone.`);
        if (!sure) return;
        try {
          await api("DELETE", imagePath(image.key));
        } catch (e) {
          message.textContent = `${image.key}: ${e.message}`;
          return;
        }
        forgetPhoto(image.key);
        browse.cards.get(image.key)?.remove();
        browse.cards.delete(image.key);
        closeImage(false);
        $("browse-status").textContent = `Deleted ${image.key}. ${plural(browse.cards.size, "photo")} left.`;
        $("browse-refresh").focus();
        refreshInfo();
      },
    });
    const faceItems = faces.map((face, i) =>
      el(
        "li",
        { "data-face": face.FaceId },
        el("span", { className: "face-text" }, `Face ${i + 1}`, " ", el("span", { className: "hint", text: `confidence ${percent(face.Confidence)}` })),
        el("button", {
          type: "button",
          text: "Delete face",
          "aria-label": `Delete face ${i + 1}`,
          onclick: async () => {
            if (!(await confirmDelete("Delete this face?", `Delete face ${i + 1} of “${image.key}”? Searches will no longer find it.`))) return;
            try {
              await api("DELETE", `faces/${encodeURIComponent(face.FaceId)}`);
              const reply = await apiJson("GET", imagePath(image.key));
              updateCard(reply.image);
              showImage(reply, back);
              refreshInfo();
            } catch (e) {
              message.textContent = `Face ${i + 1}: ${e.message}`;
            }
          },
        }),
      ),
    );
    detail.replaceChildren(
      el("div", { className: "actions" }, back),
      el(
        "div",
        { className: "detail" },
        el("div", {}, photoFigure(storedPhotoUrl(image.key), title, facesAsBoxes(faces))),
        el(
          "div",
          { className: "detail-side" },
          heading,
          el(
            "dl",
            { className: "facts" },
            el("dt", { text: "File" }),
            el("dd", { text: image.key }),
            el("dt", { text: "Status" }),
            el("dd", {}, statusBadge(image.status)),
            image.error ? [el("dt", { text: "Error" }), el("dd", { text: image.error })] : null,
            el("dt", { text: "Faces" }),
            el("dd", { className: "face-count", text: String(faces.length) }),
            image.size ? [el("dt", { text: "Size" }), el("dd", { text: formatBytes(image.size) })] : null,
            image.updatedAt ? [el("dt", { text: "Updated" }), el("dd", { text: new Date(image.updatedAt).toLocaleString() })] : null,
          ),
          faces.length ? el("ol", { className: "face-list", "aria-label": "Faces" }, faceItems) : el("p", { className: "hint", text: "No face is indexed in this photo." }),
          message,
          el("div", { className: "actions" }, deletePhoto),
        ),
      ),
    );
    updateCard(image);
  }

  function setUpBrowse() {
    $("browse-refresh").addEventListener("click", () => loadBrowse(true));
    $("browse-more").addEventListener("click", () => loadBrowse(false));
  }

  // ---------- Start ----------

  setUpApiKey();
  setUpIndex();
  setUpSearch();
  setUpBrowse();
  setUpTabs();
  refreshInfo();
})();
