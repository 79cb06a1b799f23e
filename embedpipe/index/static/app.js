"use strict";
// The search page: text, image or id queries against the JSON API. Every string from the
// server is put in the page with textContent (never as HTML).

const $ = (id) => document.getElementById(id);
let health = null;

function setState(state) {
  document.body.dataset.state = state; // "loading" | "done" | "error" (tests wait on it)
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setState("error");
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

async function callApi(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error("cannot reach the server: " + err.message);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return body;
}

async function showMapLink() {
  // the embedding map is there when the server was started with it (embedpipe serve --map)
  try {
    const r = await fetch("/map/ready");
    if (r.ok) document.getElementById("map-link").hidden = false;
  } catch (err) { /* no map */ }
}

async function loadHealth() {
  showMapLink();
  try {
    health = await callApi("/health");
  } catch (err) {
    showError(err.message);
    return;
  }
  const tuned = Object.entries(health.search_params || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  $("info").textContent =
    `${health.name}: ${health.n.toLocaleString()} ${health.modality} items, backbone ` +
    `${health.backbone}, ${health.kind} index (${health.factory}${tuned ? ", " + tuned : ""}), ` +
    `metric ${health.metric}`;
  const modalities = health.query_modalities || [health.modality];
  $("where-columns").textContent = health.columns ? "columns: " + health.columns.join(", ") : "";
  $("text-row").hidden = !modalities.includes("text");
  $("image-row").hidden = !modalities.includes("image");
  document.title = `embedpipe search: ${health.name}`;
}

function render(data) {
  const list = $("results");
  list.replaceChildren();
  list.className = data.results.some((r) => r.thumbnail) ? "images" : "text";
  for (const hit of data.results) {
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.id = hit.id;
    li.title = "click: more like this";
    if (hit.thumbnail) {
      const img = document.createElement("img");
      img.className = "thumb";
      img.src = hit.thumbnail;
      img.alt = hit.id;
      img.loading = "lazy";
      li.appendChild(img);
    }
    const id = document.createElement("div");
    id.className = "result-id";
    id.textContent = hit.id;
    const meta = document.createElement("div");
    meta.className = "meta";
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = `#${hit.rank}`;
    const label = document.createElement("span");
    label.className = "result-label";
    label.textContent = hit.label === null ? "" : hit.label;
    const score = document.createElement("span");
    score.className = "result-score";
    score.textContent = hit.score.toFixed(4);
    meta.append(rank, label, score);
    li.append(id);
    if (hit.content && hit.content !== hit.id) {
      const content = document.createElement("div");
      content.className = "result-content";
      content.textContent = hit.content; // the item's text, or its path / URL / key
      li.append(content);
    }
    li.append(meta);
    li.addEventListener("click", () => {
      $("query-text").value = "";
      $("query-image").value = "";
      $("query-preview").hidden = true;
      $("query-id").value = hit.id;
      runSearch({ id: hit.id });
    });
    list.appendChild(li);
  }
  const what = data.query.type === "vector" ? "a vector" : `${data.query.type} "${data.query.value}"`;
  const filtered = data.where ? ` where ${data.where} (${data.matching.toLocaleString()} matching)` : "";
  $("status").textContent =
    `${data.results.length} neighbours of ${what}${filtered} in ${data.took_ms} ms ` +
    `(${data.metric}, ${data.closer} is closer)`;
  setState("done");
}

async function runSearch(query) {
  clearError();
  setState("loading");
  $("status").textContent = "searching…";
  const k = parseInt($("k").value, 10);
  const where = $("where").value.trim();
  try {
    let data;
    if (query.file) {
      const form = new FormData();
      form.append("file", query.file);
      form.append("k", String(k));
      if (where) form.append("where", where);
      data = await callApi("/search/image", { method: "POST", body: form });
    } else {
      const body = query.id !== undefined ? { id: query.id, k } : { query: query.text, k };
      if (where) body.where = where;
      data = await callApi("/search", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const params = new URLSearchParams(query.id !== undefined ? { id: query.id } : { q: query.text });
      params.set("k", String(k));
      if (where) params.set("where", where);
      history.replaceState(null, "", "?" + params.toString());
    }
    render(data);
  } catch (err) {
    $("results").replaceChildren();
    $("status").textContent = "";
    showError(err.message);
  }
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("query-image").files[0];
  const text = $("query-text").value.trim();
  const id = $("query-id").value.trim();
  if (file && !$("image-row").hidden) runSearch({ file });
  else if (text && !$("text-row").hidden) runSearch({ text });
  else if (id) runSearch({ id });
  else showError("type a text, choose an image or give an id to search for.");
});

$("query-image").addEventListener("change", () => {
  const file = $("query-image").files[0];
  const preview = $("query-preview");
  if (!file) {
    preview.hidden = true;
    return;
  }
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
});

(async () => {
  setState("loading");
  await loadHealth();
  const params = new URLSearchParams(window.location.search);
  if (params.get("where")) $("where").value = params.get("where");
  if (params.has("k")) {
    const v = params.get("k");
    if (![...$("k").options].some((o) => o.value === v)) {
      const option = document.createElement("option");
      option.textContent = v;
      $("k").appendChild(option);
    }
    $("k").value = v;
  }
  if (params.get("q")) {
    $("query-text").value = params.get("q");
    await runSearch({ text: params.get("q") });
  } else if (params.get("id")) {
    $("query-id").value = params.get("id");
    await runSearch({ id: params.get("id") });
  } else if (health) {
    setState("done");
  }
})();
