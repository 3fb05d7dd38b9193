// Faceprint console: index, search and browse faces, and name people,
// through the public HTTP API only. Plain JavaScript, no build step,
// nothing from elsewhere.
"use strict";

(() => {
  const KEY_STORAGE = "faceprint.apiKey";
  const DISMISSED_STORAGE = "faceprint.dismissedSuggestions";
  const PAGE_SIZE = 24;
  const PENDING_POLL_MS = 1500;
  const PENDING_POLL_LIMIT = 40;
  // Box colours for the faces of a query photo; each matched face gets its query face's colour.
  const COLORS = ["#22c55e", "#f59e0b", "#38bdf8", "#f472b6", "#a78bfa", "#2dd4bf", "#f87171", "#facc15"];
  // Chalice and API Gateway send a photo as binary only when Accept names a binary type first.
  const PHOTO_ACCEPT = "image/jpeg, image/png, */*;q=0.8";
  // Face thumbnails: a square crop of the stored photo, this many pixels a side.
  const THUMB_PX = 160;
  const DECLINED_COLOR = "#f87171";
  // Why IndexFaces declined a face (the image record's unindexedFaces), in words.
  const DECLINED_REASONS = {
    EXCEEDS_MAX_FACES: "over the faces-per-photo limit",
    EXTREME_POSE: "turned too far away",
    LOW_BRIGHTNESS: "too dark",
    LOW_SHARPNESS: "too blurry",
    LOW_CONFIDENCE: "maybe not a face",
    SMALL_BOUNDING_BOX: "too small",
    LOW_FACE_QUALITY: "too poor a picture",
  };
  // Why AssociateFaces refused a face, in words.
  const REFUSALS = {
    FACE_NOT_FOUND: () => "this face is no longer indexed",
    ASSOCIATED_TO_A_DIFFERENT_USER: () => "it already belongs to someone else: take it from them first (“Not this person” in People)",
    LOW_MATCH_CONFIDENCE: (refusal, name) =>
      `it does not look enough like ${name}’s other faces${refusal.Confidence === undefined ? "" : ` (${percent(refusal.Confidence)} alike)`}`,
  };

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

  // How much to trust a match or a person found (the API's `confident` and
  // `expectedStrangers`): a name the API gives, or only a possible one (the
  // likeliest identity, which a default search shows flagged).
  function strangersInWords(expected) {
    if (expected < 0.001) return "fewer than 1 in 1,000 searches would find a stranger as similar";
    if (expected < 1) return `about 1 in ${Math.round(1 / expected).toLocaleString("en")} searches would find a stranger as similar`;
    return `about ${Math.round(expected).toLocaleString("en")} strangers here are as similar`;
  }

  function trustTag(found) {
    const confident = found.confident !== false;
    return el("span", {
      className: confident ? "trust confident" : "trust possible",
      text: confident ? "confident" : "possible",
      title: strangersInWords(found.expectedStrangers || 0),
    });
  }

  function inWords(reasons, words) {
    return reasons.map((reason) => words[reason] || reason.toLowerCase().replace(/_/g, " ")).join(", ");
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

  function jsonBody(value) {
    return { body: JSON.stringify(value), headers: { "Content-Type": "application/json" } };
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

  // boxes: [{box: {Left, Top, Width, Height} as ratios, color, label, declined}];
  // a face the engine declined is drawn dashed.
  function drawBoxes(figure, boxes) {
    figure.querySelectorAll(".box").forEach((node) => node.remove());
    for (const { box, color, label, declined } of boxes) {
      if (!box) continue;
      const left = Math.max(0, box.Left);
      const top = Math.max(0, box.Top);
      const right = Math.min(1, box.Left + box.Width);
      const bottom = Math.min(1, box.Top + box.Height);
      const node = el("div", {
        className: ["box", top < 0.08 ? "label-below" : "", declined ? "declined" : ""].join(" ").trim(),
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

  // ---------- Face thumbnails ----------

  // Face records by FaceId (GET /faces/{faceId}), and their thumbnails as
  // blob: URLs cut from the stored photo: a FaceId never changes its box.
  const faceRecords = new Map();
  const faceCrops = new Map();

  function faceRecord(faceId) {
    if (!faceRecords.has(faceId)) {
      const face = apiJson("GET", `faces/${encodeURIComponent(faceId)}`).then((reply) => reply.face);
      face.catch(() => faceRecords.delete(faceId));
      faceRecords.set(faceId, face);
    }
    return faceRecords.get(faceId);
  }

  function faceCropUrl(face) {
    if (!faceCrops.has(face.FaceId)) {
      const url = storedPhotoUrl(face.imageKey).then((photo) => cropFace(photo, face.BoundingBox));
      url.catch(() => faceCrops.delete(face.FaceId));
      faceCrops.set(face.FaceId, url);
    }
    return faceCrops.get(face.FaceId);
  }

  // A square around the face, with a margin, inside the photo.
  async function cropFace(photoUrl, box) {
    const img = new Image();
    img.src = photoUrl;
    await img.decode();
    const width = img.naturalWidth;
    const height = img.naturalHeight;
    const side = Math.min(width, height, Math.max(box.Width * width, box.Height * height) * 1.5);
    const left = Math.min(Math.max(0, (box.Left + box.Width / 2) * width - side / 2), width - side);
    const top = Math.min(Math.max(0, (box.Top + box.Height / 2) * height - side / 2), height - side);
    const canvas = el("canvas", { width: THUMB_PX, height: THUMB_PX });
    canvas.getContext("2d").drawImage(img, left, top, side, side, 0, 0, THUMB_PX, THUMB_PX);
    const blob = await new Promise((resolve, reject) =>
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the face could not be cut out"))), "image/jpeg", 0.88),
    );
    return URL.createObjectURL(blob);
  }

  // face: a face record, or a FaceId whose record is fetched first.
  function faceThumb(face, alt) {
    const record = typeof face === "string" ? faceRecord(face) : Promise.resolve(face);
    const figure = photoFigure(record.then(faceCropUrl), alt);
    figure.classList.add("face-thumb");
    if (typeof face === "string") {
      record.then(
        (found) => figure.querySelector("img")?.setAttribute("alt", `${alt} (${found.imageKey})`),
        () => {},
      );
    }
    return figure;
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
      if (people.loaded) loadPeople(true);
      if (suggestions.loaded) loadSuggestions(false);
    });
  }

  // ---------- Tabs ----------

  const VIEWS = ["index", "search", "browse", "people"];

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
    if (name === "people" && !people.loaded) loadPeople(true);
    if (name === "people" && !suggestions.loaded) loadSuggestions(false);
  }

  function setUpTabs() {
    for (const view of VIEWS) {
      const tab = $(`tab-${view}`);
      // A tab the user opens brings the header's counts up to date too (a photo
      // indexed by its S3 event, a face or photo deleted, a person erased).
      tab.addEventListener("click", () => {
        showView(view);
        refreshInfo();
      });
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
          refreshInfo();
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

  // A match whose face belongs to a person is labelled with their name by the API.
  // A possible match (`confident: false`: it does not stand clear of the
  // strangers, or of another person, as the API's naming rule asks) is shown
  // apart from a confident one.
  // `sayStrangers`: false when the match above says the same of strangers.
  function matchCard(match, color, sayStrangers = true) {
    const name = match.label || match.imageKey;
    const possible = match.confident === false;
    return el(
      "li",
      {
        className: ["match", match.personId ? "is-person" : "", possible ? "is-possible" : ""].filter(Boolean).join(" "),
        "data-person": match.personId,
      },
      photoFigure(storedPhotoUrl(match.imageKey), `${name} (${match.imageKey})`, [
        { box: match.BoundingBox, color, label: percent(match.Similarity) },
      ]),
      el("p", { className: "match-name" }, name, match.personId ? [" ", el("span", { className: "person-tag", text: "person" })] : null),
      el("p", { className: "match-trust" }, trustTag(match), sayStrangers ? [" ", el("span", { className: "hint", text: strangersInWords(match.expectedStrangers || 0) })] : null),
      el("p", { className: "match-similarity", text: `${percent(match.Similarity)} similar · ${match.imageKey}` }),
    );
  }

  // The name a query face is shown under: its best match's, with a "?" when
  // that is only a possible name.
  function bestName(matches) {
    const best = matches[0];
    if (!best) return "no match";
    return best.confident === false ? `${best.label}?` : best.label;
  }

  // Who face `index` of the photo is, among people: for the largest face the
  // reply of POST /search/people (which, as Rekognition's SearchUsersByImage,
  // looks at that face only); for the others, the people their own matches
  // belong to, each at their best match.
  function peopleFoundSection(found, many, index = 0) {
    const title = many ? `Who is face ${index + 1}` : "Who is it";
    const body = el("p", { className: "hint", role: "status", text: "Looking among people…" });
    const section = el(
      "section",
      { className: "people-found", style: { "--box-color": COLORS[index % COLORS.length] }, "aria-label": title },
      el("h3", {}, el("span", { className: "swatch", "aria-hidden": "true" }), title),
      body,
    );
    found.then(
      (reply) => {
        if (reply.people.length) {
          body.replaceWith(
            el(
              "ol",
              { className: "people-found-list" },
              reply.people.map((person) =>
                el(
                  "li",
                  { "data-person": person.personId, className: person.confident === false ? "is-possible" : "" },
                  el("span", { className: "person-name", text: person.name }),
                  " ",
                  trustTag(person),
                  " ",
                  el("span", { className: "hint", text: `${percent(person.similarity)} similar` }),
                ),
              ),
            ),
          );
        } else {
          body.textContent = reply.SearchedFace ? "No person looks like this face." : "No face to look for.";
        }
      },
      (error) => {
        body.className = "error-message";
        body.textContent = `People: ${error.message}`;
      },
    );
    return section;
  }

  // Two matches whose trust reads the same: one sentence says it for both.
  function sameTrust(a, b) {
    return (a.confident !== false) === (b.confident !== false) && strangersInWords(a.expectedStrangers || 0) === strangersInWords(b.expectedStrangers || 0);
  }

  function peopleInMatches(face) {
    const best = new Map();
    for (const match of face.matches) {
      if (match.personId && !best.has(match.personId)) {
        const { personId, label: name, Similarity: similarity, confident, expectedStrangers } = match;
        best.set(personId, { personId, name, similarity, confident, expectedStrangers });
      }
    }
    return { people: [...best.values()], SearchedFace: face.box };
  }

  function queryFaceSection(face, index, color, many) {
    const title = many ? `Face ${index + 1}` : "Searched face";
    const count = face.matches.length ? plural(face.matches.length, "match", "matches") : "no match";
    return el(
      "section",
      { className: "query-face", style: { "--box-color": color }, "aria-label": title },
      el("h3", {}, el("span", { className: "swatch", "aria-hidden": "true" }), `${title} · ${count}`),
      face.matches.length
        ? el("ol", { className: "matches" }, face.matches.map((match, i) => matchCard(match, color, i === 0 || !sameTrust(match, face.matches[i - 1]))))
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
    const photo = { body: file, headers: { "Content-Type": file.type || "application/octet-stream" } };
    // The API's defaults: the names its rule gives, and the likeliest identity flagged when it gives none.
    const found = apiJson("POST", "search/people", photo);
    found.catch(() => {}); // shown in its own section below
    let reply;
    try {
      reply = await apiJson("POST", `search${all ? "?faces=all" : ""}`, photo);
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
        label: many ? String(i + 1) : bestName(face.matches),
      })),
    );
    if (!faces.length) {
      status.textContent = `No face was found in ${file.name}.`;
      return;
    }
    const matched = faces.reduce((sum, face) => sum + face.matches.length, 0);
    const confident = faces.reduce((sum, face) => sum + face.matches.filter((m) => m.confident !== false).length, 0);
    const possible = matched - confident;
    status.textContent =
      `${file.name}: ${plural(faces.length, "face")} searched, ${plural(matched, "match", "matches")}` +
      (possible ? ` (${confident} confident, ${possible} possible).` : ".");
    result.append(
      el(
        "div",
        { className: "search-matches" },
        faces.flatMap((face, i) => [
          peopleFoundSection(i === 0 ? found : Promise.resolve(peopleInMatches(face)), many, i),
          queryFaceSection(face, i, COLORS[i % COLORS.length], many),
        ]),
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

  // One page more of a listing (the photos, the people) into its grid of
  // cards, or its first page again when `reset`.
  async function loadCards(list, { name, path, items, idOf, card, counted, empty, close }, reset) {
    list.loading = true;
    const grid = $(`${name}-grid`);
    const status = $(`${name}-status`);
    const more = $(`${name}-more`);
    if (reset) {
      list.next = null;
      list.cards.clear();
      grid.replaceChildren();
      close(false);
    }
    status.classList.remove("error-message");
    status.textContent = "Loading…";
    more.disabled = true;
    try {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (list.next) query.set("next", list.next);
      const page = await apiJson("GET", `${path}?${query}`);
      for (const item of page[items]) {
        if (list.cards.has(idOf(item))) continue;
        const made = card(item);
        list.cards.set(idOf(item), made);
        grid.append(made);
      }
      list.next = page.next || null;
      list.loaded = true;
      status.textContent = list.cards.size ? `${counted(list.cards.size)}${list.next ? " so far" : ""}.` : empty;
    } catch (e) {
      status.classList.add("error-message");
      status.textContent = e.message;
    } finally {
      more.hidden = !list.next;
      more.disabled = false;
      list.loading = false;
    }
  }

  async function loadBrowse(reset) {
    if (browse.loading) return;
    await loadCards(
      browse,
      {
        name: "browse",
        path: "images",
        items: "images",
        idOf: (image) => image.key,
        card: imageCard,
        counted: (n) => plural(n, "photo"),
        empty: "No photo is indexed yet: add some in the Index tab.",
        close: closeImage,
      },
      reset,
    );
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

  function showImage({ image, faces }, back, notice = "") {
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
    const declined = image.unindexedFaces || [];
    const faceItems = faces.map((face, i) => browseFaceItem(image, face, i, back, message));
    const declinedItems = declined.map((face, i) =>
      el(
        "li",
        { className: "declined-face" },
        el(
          "span",
          { className: "face-text" },
          `Declined face ${i + 1}: `,
          el("span", { className: "declined-reasons", text: inWords(face.Reasons, DECLINED_REASONS) }),
        ),
      ),
    );
    const boxes = [
      ...facesAsBoxes(faces),
      ...declined.map((face, i) => ({
        box: face.FaceDetail.BoundingBox,
        color: DECLINED_COLOR,
        label: `declined ${i + 1}`,
        declined: true,
      })),
    ];
    const refocus = keepFocus(detail, back, heading);
    detail.replaceChildren(
      el("div", { className: "actions" }, back),
      el(
        "div",
        { className: "detail" },
        el("div", {}, photoFigure(storedPhotoUrl(image.key), title, boxes)),
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
            declined.length ? [el("dt", { text: "Declined" }), el("dd", { className: "declined-count", text: String(declined.length) })] : null,
            image.size ? [el("dt", { text: "Size" }), el("dd", { text: formatBytes(image.size) })] : null,
            image.updatedAt ? [el("dt", { text: "Updated" }), el("dd", { text: new Date(image.updatedAt).toLocaleString() })] : null,
          ),
          notice ? el("p", { className: "file-status ok", role: "status", text: notice }) : null,
          faces.length ? el("ol", { className: "face-list", "aria-label": "Faces" }, faceItems) : el("p", { className: "hint", text: "No face is indexed in this photo." }),
          declined.length
            ? el(
                "div",
                { className: "declined" },
                el("h4", { text: `${plural(declined.length, "face")} not indexed` }),
                el("p", { className: "hint", text: "Found in the photo but declined by the engine: searches never return them." }),
                el("ol", { className: "face-list", "aria-label": "Declined faces" }, declinedItems),
              )
            : null,
          message,
          el("div", { className: "actions" }, deletePhoto),
        ),
      ),
    );
    refocus();
    updateCard(image);
  }

  // A face of the opened photo: whose it is, "This is…" and delete.
  function browseFaceItem(image, face, i, back, photoMessage) {
    const label = `Face ${i + 1}`;
    const message = el("p", { className: "error-message", role: "alert" });
    const who = el("span", { className: "face-person" });
    if (face.UserId) {
      who.textContent = ` · ${face.UserId}`;
      personName(face.UserId).then((name) => {
        who.textContent = ` · ${name}`;
      });
    }
    const form = thisIsForm(image, face, label, message, back);
    const thisIs = el("button", {
      type: "button",
      text: "This is…",
      "aria-label": `${label}: this is…`,
      "aria-expanded": "false",
      onclick: () => {
        const open = form.hidden;
        form.hidden = !open;
        thisIs.setAttribute("aria-expanded", String(open));
        if (open) form.choose();
      },
    });
    const deleteFace = el("button", {
      type: "button",
      text: "Delete face",
      "aria-label": `Delete face ${i + 1}`,
      onclick: async () => {
        if (!(await confirmDelete("Delete this face?", `Delete face ${i + 1} of “${image.key}”? Searches will no longer find it.`))) return;
        try {
          await api("DELETE", `faces/${encodeURIComponent(face.FaceId)}`);
          const reply = await apiJson("GET", imagePath(image.key));
          updateCard(reply.image);
          peopleChanged();
          showImage(reply, back);
          refreshInfo();
        } catch (e) {
          photoMessage.textContent = `Face ${i + 1}: ${e.message}`;
        }
      },
    });
    return el(
      "li",
      { "data-face": face.FaceId },
      el("span", { className: "face-text" }, label, who, " ", el("span", { className: "hint", text: `confidence ${percent(face.Confidence)}` })),
      thisIs,
      deleteFace,
      form,
      message,
    );
  }

  // "This is…": an existing person, or a new one made from a name; the API
  // may refuse the face (AssociateFaces' reasons), said in words.
  function thisIsForm(image, face, label, message, back) {
    const NEW = "";
    const CHOOSE = "\u0000choose"; // no personId holds a control character
    let secondOf = null; // a name the user chose to give a second person
    const select = el("select", { disabled: true }, el("option", { value: NEW, text: "Loading people…" }));
    const name = el("input", { type: "text", maxLength: 256, placeholder: "e.g. Jane Doe", autocomplete: "off" });
    const nameField = el("label", { className: "field", hidden: true }, "Name of the new person", name);
    const save = el("button", { type: "submit", className: "primary", text: "Save", disabled: true });
    let known = [];
    const form = el(
      "form",
      { className: "this-is", hidden: true, "aria-label": `Who is ${label.toLowerCase()}` },
      el("label", { className: "field" }, `Who is ${label.toLowerCase()}?`, select),
      nameField,
      el("div", { className: "actions" }, save),
    );
    const showName = () => {
      nameField.hidden = select.value !== NEW;
    };
    select.addEventListener("change", showName);
    // The people to choose from, listed when the form is first opened.
    let listed = false;
    form.choose = async () => {
      if (listed) {
        select.focus();
        return;
      }
      listed = true;
      try {
        known = [...(await allPeople())].sort((a, b) => a.name.localeCompare(b.name));
      } catch (e) {
        listed = false;
        message.textContent = `People: ${e.message}`;
        return;
      }
      const names = known.map((person) => person.name);
      const unique = (person) => names.indexOf(person.name) === names.lastIndexOf(person.name);
      select.replaceChildren(
        el("option", { value: CHOOSE, text: "Choose…", disabled: true }),
        ...known.map((person) =>
          el("option", { value: person.personId, text: unique(person) ? person.name : `${person.name} (${person.personId})` }),
        ),
        el("option", { value: NEW, text: "A new person…" }),
      );
      select.value = known.length ? CHOOSE : NEW; // nobody is picked for the user
      select.disabled = false;
      save.disabled = false;
      showName();
      select.focus();
    };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      message.textContent = "";
      const newName = name.value.trim();
      if (select.value === CHOOSE) {
        message.textContent = "Choose who it is, or “A new person…”.";
        select.focus();
        return;
      }
      if (select.value === NEW && !newName) {
        message.textContent = "Give the new person a name.";
        name.focus();
        return;
      }
      const existing = select.value === NEW && secondOf !== newName ? known.find((p) => p.name.trim().toLocaleLowerCase() === newName.toLocaleLowerCase()) : null;
      if (existing) {
        // Offer the person who has the name; choosing "A new person…" again makes a second.
        secondOf = newName;
        select.value = existing.personId;
        showName();
        message.textContent = `There is already a person named ${existing.name}: chosen above, Save adds this face to them. For a second person so named, choose “A new person…” and Save again.`;
        select.focus();
        return;
      }
      save.disabled = true;
      try {
        const created = select.value === NEW;
        const person = created ? await createPerson(newName) : known.find((p) => p.personId === select.value);
        const reply = await associate(person.personId, [face.FaceId]);
        const refusal = reply.unsuccessfulFaceAssociations[0];
        if (refusal) {
          let text = `${label} was not added to ${person.name}: ${refusalInWords(refusal, person.name)}.`;
          if (created) {
            await api("DELETE", `people/${encodeURIComponent(person.personId)}`);
            peopleChanged();
            text += " The new person was not kept.";
          }
          message.textContent = text;
          return;
        }
        const fresh = await apiJson("GET", imagePath(image.key));
        if (browse.opened !== image.key) return;
        const done = reply.associatedFaces.length ? "is now" : "already was";
        showImage(fresh, back, `${label} ${done} ${person.name}.`);
      } catch (error) {
        message.textContent = `${label}: ${error.message}`;
      } finally {
        save.disabled = false;
      }
    });
    return form;
  }

  // A detail view drawn again: focus stays on its back button, or else goes
  // to its heading when it was on a control now gone.
  function keepFocus(detail, back, heading) {
    const active = document.activeElement;
    const inside = detail.contains(active);
    return () => {
      if (active === back) back.focus();
      else if (inside && !detail.contains(active)) heading.focus();
    };
  }

  function setUpBrowse() {
    $("browse-refresh").addEventListener("click", () => loadBrowse(true));
    $("browse-more").addEventListener("click", () => loadBrowse(false));
  }

  // ---------- People ----------

  const people = { loaded: false, next: null, loading: false, again: false, cards: new Map(), opened: null, all: null };
  const RESERVED_IDS = new Set(["suggestions"]); // GET /people/suggestions

  // Every person (for pickers, names and new ids): the listing followed to its end.
  function allPeople() {
    if (!people.all) {
      const all = (async () => {
        const found = [];
        let next = null;
        do {
          const query = new URLSearchParams({ limit: "1000" });
          if (next) query.set("next", next);
          const page = await apiJson("GET", `people?${query}`);
          found.push(...page.people);
          next = page.next;
        } while (next);
        return found;
      })();
      all.catch(() => {
        if (people.all === all) people.all = null;
      });
      people.all = all;
    }
    return people.all;
  }

  function peopleChanged() {
    people.all = null;
    people.loaded = false;
  }

  function personName(personId) {
    return allPeople().then(
      (list) => list.find((person) => person.personId === personId)?.name || personId,
      () => personId,
    );
  }

  function personPath(personId) {
    return `people/${encodeURIComponent(personId)}`;
  }

  // A personId from a name, valid by Rekognition's UserId rule
  // ([a-zA-Z0-9_.\-:]{1,128}): its slug, with a short random suffix if taken.
  function slug(name) {
    const base = name
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .slice(0, 64)
      .replace(/^-+|-+$/g, "");
    return base || "person";
  }

  function randomSuffix() {
    const bytes = crypto.getRandomValues(new Uint8Array(3));
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  async function newPersonId(name) {
    people.all = null;
    const taken = new Set((await allPeople()).map((person) => person.personId));
    const base = slug(name);
    let personId = base;
    while (taken.has(personId) || RESERVED_IDS.has(personId)) personId = `${base}-${randomSuffix()}`;
    return personId;
  }

  // PUT /people/{personId} under a new id made from the name.
  async function createPerson(name) {
    const reply = await apiJson("PUT", personPath(await newPersonId(name)), jsonBody({ name }));
    peopleChanged();
    return reply.person;
  }

  // The person already named `name` (case and spaces aside), if any: naming a
  // group or a face after them offers to add to them rather than make a second.
  async function namesake(name) {
    const wanted = name.trim().toLocaleLowerCase();
    return (await allPeople()).find((person) => person.name.trim().toLocaleLowerCase() === wanted) || null;
  }

  // POST /people/{personId}/faces: {person, associatedFaces, unsuccessfulFaceAssociations}.
  async function associate(personId, faceIds) {
    const reply = await apiJson("POST", `${personPath(personId)}/faces`, jsonBody({ faceIds }));
    peopleChanged();
    return reply;
  }

  function refusalInWords(refusal, name) {
    return refusal.Reasons.map((reason) => (REFUSALS[reason] ? REFUSALS[reason](refusal, name) : reason)).join("; ");
  }

  // "3 faces added" and why the others were not, in words.
  function associationOutcome(reply, name) {
    const added = reply.associatedFaces.length;
    const refused = reply.unsuccessfulFaceAssociations;
    let text = `${name} now has ${plural(reply.person.faceCount, "face")} (${added} added).`;
    if (refused.length) {
      const why = [...new Set(refused.map((refusal) => refusalInWords(refusal, name)))].join("; ");
      text += ` ${plural(refused.length, "face was", "faces were")} not added: ${why}.`;
    }
    return text;
  }

  function personCard(person) {
    const thumb = el("div", { className: "thumb" }, el("span", { className: "no-face", text: "no face yet" }));
    const card = el(
      "li",
      { className: "card person-card", "data-person": person.personId },
      el(
        "button",
        { type: "button", className: "open", onclick: () => openPerson(person.personId) },
        thumb,
        el(
          "span",
          { className: "meta" },
          el("span", { className: "title person-name", text: person.name }),
          el("span", { className: "face-count", text: plural(person.faceCount, "face") }),
        ),
      ),
    );
    if (person.faceCount) {
      apiJson("GET", `faces?person=${encodeURIComponent(person.personId)}`).then(
        ({ faces }) => {
          if (faces.length) thumb.replaceChildren(faceThumb(faces[0], `A face of ${person.name}`));
        },
        (e) => thumb.replaceChildren(el("span", { className: "error-message", text: e.message })),
      );
    }
    return card;
  }

  async function loadPeople(reset) {
    if (people.loading) {
      // A change while a page loads: list again from the start once it is in.
      if (reset) people.again = true;
      return;
    }
    if (reset) people.all = null;
    await loadCards(
      people,
      {
        name: "people",
        path: "people",
        items: "people",
        idOf: (person) => person.personId,
        card: personCard,
        counted: (n) => plural(n, "person", "people"),
        empty: "Nobody is named yet: accept a suggestion below, or say who a face is in Browse.",
        close: closePerson,
      },
      reset,
    );
    if (people.again) {
      people.again = false;
      loadPeople(true);
    }
  }

  function updatePersonCard(person) {
    const old = people.cards.get(person.personId);
    if (!old) return;
    const card = personCard(person);
    old.replaceWith(card);
    people.cards.set(person.personId, card);
  }

  function closePerson(focusCard = true) {
    const personId = people.opened;
    people.opened = null;
    $("person-detail").hidden = true;
    $("person-detail").replaceChildren();
    $("people-list").hidden = false;
    const card = personId && people.cards.get(personId);
    if (focusCard && card) card.querySelector("button").focus();
  }

  async function openPerson(personId) {
    people.opened = personId;
    const detail = $("person-detail");
    $("people-list").hidden = true;
    detail.hidden = false;
    const back = el("button", { type: "button", text: "← All people", onclick: () => closePerson() });
    detail.replaceChildren(el("div", { className: "actions" }, back), el("p", { role: "status", text: "Loading…" }));
    back.focus();
    let reply;
    try {
      reply = await apiJson("GET", personPath(personId));
    } catch (e) {
      detail.replaceChildren(el("div", { className: "actions" }, back), el("p", { className: "error-message", text: e.message }));
      return;
    }
    if (people.opened !== personId) return;
    showPerson(reply, back);
  }

  function showPerson({ person, faces }, back, notice = "") {
    const detail = $("person-detail");
    const message = el("p", { className: "error-message", role: "alert" });
    const heading = el("h3", { tabindex: "-1", text: person.name });
    const path = personPath(person.personId);

    const name = el("input", { type: "text", value: person.name, maxLength: 256, required: true, autocomplete: "off" });
    const renameMessage = el("p", { className: "error-message", role: "alert" });
    const rename = el(
      "form",
      { className: "rename", "aria-label": "Rename" },
      el("label", { className: "field" }, "Name", name),
      el("div", { className: "actions" }, el("button", { type: "submit", text: "Rename" })),
      renameMessage,
    );
    rename.addEventListener("submit", async (e) => {
      e.preventDefault();
      renameMessage.textContent = "";
      try {
        const reply = await apiJson("PUT", path, jsonBody({ name: name.value }));
        peopleChanged();
        updatePersonCard(reply.person);
        if (people.opened !== person.personId) return;
        showPerson({ person: reply.person, faces }, back, `Renamed to ${reply.person.name}.`);
        $("person-detail").querySelector(".rename input").focus();
      } catch (error) {
        renameMessage.textContent = error.message;
      }
    });

    const faceItems = faces.map((face, i) => {
      const faceMessage = el("p", { className: "error-message", role: "alert" });
      const label = `Face ${i + 1}`;
      return el(
        "li",
        { className: "person-face", "data-face": face.FaceId },
        faceThumb(face, `${label} of ${person.name} (${face.imageKey})`),
        el("span", { className: "face-text" }, label, " ", el("span", { className: "hint", text: face.imageKey, title: face.imageKey })),
        el("button", {
          type: "button",
          text: "Not this person",
          "aria-label": `${label} is not ${person.name}`,
          onclick: async () => {
            faceMessage.textContent = "";
            try {
              await api("DELETE", `${path}/faces/${encodeURIComponent(face.FaceId)}`);
              peopleChanged();
              const reply = await apiJson("GET", path);
              if (people.opened !== person.personId) return;
              updatePersonCard(reply.person);
              showPerson(reply, back, `${label} (${face.imageKey}) is no longer ${person.name}’s.`);
            } catch (error) {
              faceMessage.textContent = `${label}: ${error.message}`;
            }
          },
        }),
        faceMessage,
      );
    });

    const deletePerson = el("button", {
      type: "button",
      className: "danger",
      text: "Delete person",
      onclick: async () => {
        const sure = await confirmDelete(
          "Delete this person?",
          `Delete ${person.name}? Their ${plural(faces.length, "face")} stay indexed, no longer named.`,
        );
        if (!sure) return;
        try {
          await api("DELETE", path);
        } catch (error) {
          message.textContent = `${person.name}: ${error.message}`;
          return;
        }
        peopleChanged();
        people.loaded = true;
        people.cards.get(person.personId)?.remove();
        people.cards.delete(person.personId);
        closePerson(false);
        $("people-status").textContent = `Deleted ${person.name}; their faces stay indexed. ${plural(people.cards.size, "person", "people")} left.`;
        $("people-refresh").focus();
      },
    });

    const refocus = keepFocus(detail, back, heading);
    detail.replaceChildren(
      el("div", { className: "actions" }, back),
      el(
        "div",
        { className: "person-detail" },
        el(
          "div",
          { className: "detail-side" },
          heading,
          el(
            "dl",
            { className: "facts" },
            el("dt", { text: "Id" }),
            el("dd", { text: person.personId }),
            el("dt", { text: "Faces" }),
            el("dd", { className: "face-count", text: String(person.faceCount) }),
            person.createdAt ? [el("dt", { text: "Named" }), el("dd", { text: new Date(person.createdAt).toLocaleString() })] : null,
          ),
          rename,
        ),
        el(
          "div",
          {},
          notice ? el("p", { className: "file-status ok", role: "status", text: notice }) : null,
          faces.length
            ? el("ol", { className: "person-faces", "aria-label": `Faces of ${person.name}` }, faceItems)
            : el("p", { className: "hint", text: "No face is theirs: say who a face is in Browse (“This is…”)." }),
          message,
          el("div", { className: "actions" }, deletePerson),
        ),
      ),
    );
    refocus();
  }

  // ---------- Suggested people ----------

  const MAX_SHOWN_FACES = 6;
  const suggestions = { loaded: false, dismissed: new Set(JSON.parse(sessionStorage.getItem(DISMISSED_STORAGE) || "[]")), last: null };

  function saveDismissed() {
    sessionStorage.setItem(DISMISSED_STORAGE, JSON.stringify([...suggestions.dismissed]));
  }

  async function loadSuggestions(compute) {
    const status = $("suggestions-status");
    const button = $("suggestions-compute");
    status.classList.remove("error-message");
    status.textContent = compute ? "Grouping the faces nobody is named in…" : "Loading…";
    button.disabled = true;
    try {
      const reply = await apiJson(compute ? "POST" : "GET", "people/suggestions");
      suggestions.loaded = true;
      showSuggestions(reply);
    } catch (e) {
      status.classList.add("error-message");
      status.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  }

  // The groups not dismissed, a page at a time (each face shown costs a GET /faces/{faceId}).
  function showSuggestions(reply, more = false) {
    suggestions.last = reply;
    const list = $("suggestions-list");
    const shown = new Set(more ? [...list.children].map((card) => card.dataset.suggestion) : []);
    const page = waiting()
      .filter((suggestion) => !shown.has(suggestion.suggestionId))
      .slice(0, PAGE_SIZE)
      .map(suggestionCard);
    if (more) list.append(...page);
    else list.replaceChildren(...page);
    summarizeSuggestions();
  }

  function waiting() {
    return suggestions.last.suggestions.filter((suggestion) => !suggestions.dismissed.has(suggestion.suggestionId));
  }

  function summarizeSuggestions() {
    const reply = suggestions.last;
    const status = $("suggestions-status");
    const shown = waiting().length;
    const hidden = reply.suggestions.length - shown;
    $("suggestions-more").hidden = $("suggestions-list").children.length >= shown;
    if (!reply.computedAt) {
      status.textContent = "Not looked for yet.";
    } else {
      const when = new Date(reply.computedAt).toLocaleString();
      status.replaceChildren(
        `${plural(shown, "group")} among ${plural(reply.facesConsidered, "unnamed face")} (${when}).`,
        ...(hidden
          ? [
              " ",
              el("button", {
                type: "button",
                className: "link",
                text: `Show ${hidden} dismissed`,
                onclick: () => {
                  suggestions.dismissed.clear();
                  saveDismissed();
                  showSuggestions(suggestions.last);
                },
              }),
            ]
          : []),
      );
    }
  }

  function suggestionCard(suggestion) {
    const title = `A group of ${plural(suggestion.size, "face")}`;
    const titleId = `suggestion-${suggestion.suggestionId}`;
    const message = el("p", { className: "error-message", role: "alert" });
    const name = el("input", { type: "text", maxLength: 256, required: true, placeholder: "e.g. Jane Doe", autocomplete: "off" });
    const accept = el("button", { type: "submit", className: "primary", text: "Add person" });
    const dismiss = el("button", { type: "button", text: "Dismiss", "aria-label": `Dismiss ${title.toLowerCase()}` });
    const faceIds = suggestion.faceIds.slice(0, MAX_SHOWN_FACES);
    const card = el(
      "li",
      { className: "suggestion", "data-suggestion": suggestion.suggestionId, "aria-labelledby": titleId },
      el("h4", { id: titleId, text: title }),
      el(
        "ul",
        { className: "face-strip", "aria-label": "Faces in this group" },
        faceIds.map((faceId, i) => el("li", {}, faceThumb(faceId, `Face ${i + 1} of the group`))),
        suggestion.size > faceIds.length ? el("li", { className: "more hint", text: `+${suggestion.size - faceIds.length} more` }) : null,
      ),
    );
    const form = el(
      "form",
      { className: "accept", "aria-label": `Name ${title.toLowerCase()}` },
      el("label", { className: "field" }, "Who is this?", name),
      el("div", { className: "actions" }, accept, dismiss),
    );
    const busy = (on) => {
      for (const control of card.querySelectorAll("button, input")) control.disabled = on;
    };
    // Up to 100 faces a request (a person holds at most 100): the rest stay unnamed.
    // A person made here who got none of the faces is not kept.
    const done = async (person, created) => {
      const reply = await associate(person.personId, suggestion.faceIds.slice(0, 100));
      let outcome = associationOutcome(reply, person.name);
      if (created && !reply.associatedFaces.length) {
        await api("DELETE", personPath(person.personId));
        peopleChanged();
        outcome += " The new person was not kept.";
      }
      card.remove();
      suggestions.last.suggestions = suggestions.last.suggestions.filter((s) => s !== suggestion);
      summarizeSuggestions();
      $("suggestions-status").textContent = outcome;
      loadPeople(true);
    };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const wanted = name.value.trim();
      message.textContent = "";
      if (!wanted) {
        message.textContent = "Give this person a name.";
        name.focus();
        return;
      }
      busy(true);
      try {
        const existing = await namesake(wanted);
        if (existing) {
          offerNamesake(existing, wanted);
          busy(false);
          return;
        }
        await done(await createPerson(wanted), true);
      } catch (error) {
        message.textContent = error.message;
        busy(false);
      }
    });
    // A name someone already has: add the group to them, or make a second person so named.
    const choice = el("div", { className: "namesake", role: "group", hidden: true });
    const offerNamesake = (existing, wanted) => {
      const act = async (make) => {
        message.textContent = "";
        busy(true);
        try {
          await make();
        } catch (error) {
          message.textContent = error.message;
          busy(false);
        }
      };
      const addTo = el("button", { type: "button", className: "primary", text: `Add to ${existing.name}` });
      const second = el("button", { type: "button", text: `A second person named ${wanted}` });
      addTo.addEventListener("click", () => act(() => done(existing, false)));
      second.addEventListener("click", () => act(async () => done(await createPerson(wanted), true)));
      choice.replaceChildren(
        el("p", { text: `There is already a person named ${existing.name}: are these faces theirs?` }),
        el("div", { className: "actions" }, addTo, second),
      );
      choice.hidden = false;
      addTo.focus();
    };
    dismiss.addEventListener("click", () => {
      suggestions.dismissed.add(suggestion.suggestionId);
      saveDismissed();
      card.remove();
      summarizeSuggestions();
      $("suggestions-compute").focus();
    });
    const nearest = suggestion.nearestPerson;
    if (nearest) {
      const hint = el("p", { className: "nearest hint" }, `Looks like ${nearest.personId} (${percent(nearest.similarity)})`);
      const add = el("button", { type: "button", text: `Add to ${nearest.personId}` });
      personName(nearest.personId).then((known) => {
        hint.textContent = `Looks like ${known} (${percent(nearest.similarity)}).`;
        add.textContent = `Add to ${known}`;
      });
      add.addEventListener("click", async () => {
        message.textContent = "";
        busy(true);
        try {
          await done({ personId: nearest.personId, name: await personName(nearest.personId) }, false);
        } catch (error) {
          message.textContent = error.message;
          busy(false);
        }
      });
      card.append(hint, el("div", { className: "actions" }, add));
    }
    card.append(form, choice, message);
    return card;
  }

  function setUpPeople() {
    $("people-refresh").addEventListener("click", () => {
      loadPeople(true);
      loadSuggestions(false);
    });
    $("people-more").addEventListener("click", () => loadPeople(false));
    $("suggestions-compute").addEventListener("click", () => loadSuggestions(true));
    $("suggestions-more").addEventListener("click", () => showSuggestions(suggestions.last, true));
  }

  // ---------- Start ----------

  setUpApiKey();
  setUpIndex();
  setUpSearch();
  setUpBrowse();
  setUpPeople();
  setUpTabs();
  refreshInfo();
})();
