"use strict";
(function () {
  const D = JSON.parse(document.getElementById("map-data").textContent);
  const N = D.x.length;
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const tip = document.getElementById("tip");
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd"];
  const ISSUE_COLOURS = { leak: "#d62728", exact_duplicate: "#9467bd", near_duplicate: "#ff7f0e",
    label_issue: "#e377c2", outlier: "#8c564b" };
  const NONE = "#c8c8c8";
  let view = { x: 0, y: 0, s: 1 };      // screen = (data - x) * s * size
  let selected = -1, box = null, selection = [];
  let mode = "label";

  function esc(t) {
    return String(t).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function size() { return Math.min(canvas.width, canvas.height) * 0.92; }
  function pad() { return [(canvas.width - size()) / 2, (canvas.height - size()) / 2]; }
  function toScreen(i) {
    const [px, py] = pad();
    return [px + (D.x[i] - view.x) * view.s * size(), py + (1 - D.y[i] - view.y) * view.s * size()];
  }
  function toData(sx, sy) {
    const [px, py] = pad();
    return [(sx - px) / (view.s * size()) + view.x, 1 - ((sy - py) / (view.s * size()) + view.y)];
  }
  function className(c) { return c >= 0 && c < D.classes.length ? D.classes[c] : "(none)"; }
  function colourOf(i) {
    if (mode === "label") return D.label[i] >= 0 ? PALETTE[D.label[i] % PALETTE.length] : NONE;
    if (mode === "pred") return D.pred[i] >= 0 ? PALETTE[D.pred[i] % PALETTE.length] : NONE;
    if (mode === "split") return PALETTE[D.split[i] % PALETTE.length];
    if (mode === "correct") {
      if (D.pred[i] < 0 || D.label[i] < 0) return NONE;
      return D.pred[i] === D.label[i] ? "#2ca02c" : "#d62728";
    }
    return D.issues[i].length ? ISSUE_COLOURS[D.issues[i][0]] || "#000" : NONE;
  }
  function legend() {
    let items = [];
    if (mode === "label" || mode === "pred") items = D.classes.map((c, j) => [c, PALETTE[j % PALETTE.length]]);
    else if (mode === "split") items = D.splits.map((c, j) => [c, PALETTE[j % PALETTE.length]]);
    else if (mode === "correct") items = [["correct", "#2ca02c"], ["wrong", "#d62728"]];
    else items = Object.entries(ISSUE_COLOURS);
    items.push(["none", NONE]);
    document.getElementById("legend").innerHTML = items.map(([n, c]) => `<div><i style="background:${c}"></i>${esc(n)}</div>`).join("");
  }
  // Grid of points for hover / click look-ups (rebuilt when the view changes).
  let grid = null;
  const CELL = 12;
  function buildGrid() {
    grid = new Map();
    for (let i = 0; i < N; i++) {
      const [sx, sy] = toScreen(i);
      if (sx < -CELL || sy < -CELL || sx > canvas.width + CELL || sy > canvas.height + CELL) continue;
      const key = Math.floor(sx / CELL) + "," + Math.floor(sy / CELL);
      let cell = grid.get(key);
      if (!cell) grid.set(key, (cell = []));
      cell.push(i);
    }
  }
  function nearest(sx, sy, maxd) {
    const cx = Math.floor(sx / CELL), cy = Math.floor(sy / CELL);
    let best = -1, bd = maxd * maxd;
    for (let dx = -1; dx <= 1; dx++) for (let dy = -1; dy <= 1; dy++) {
      const cell = grid.get((cx + dx) + "," + (cy + dy));
      if (!cell) continue;
      for (const i of cell) {
        const [px, py] = toScreen(i);
        const d = (px - sx) ** 2 + (py - sy) ** 2;
        if (d < bd) { bd = d; best = i; }
      }
    }
    return best;
  }
  function draw() {
    const r = Math.max(1.5, Math.min(5, 3 * Math.sqrt(view.s) * (N > 20000 ? 0.6 : 1)));
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    // issue points last, so they stay visible
    const order = [];
    for (let i = 0; i < N; i++) if (!D.issues[i].length) order.push(i);
    for (let i = 0; i < N; i++) if (D.issues[i].length) order.push(i);
    let last = null;
    for (const i of order) {
      const c = colourOf(i);
      if (c !== last) { ctx.fillStyle = c; last = c; }
      const [sx, sy] = toScreen(i);
      if (sx < -r || sy < -r || sx > canvas.width + r || sy > canvas.height + r) continue;
      ctx.fillRect(sx - r / 2, sy - r / 2, r, r);
    }
    const sel = new Set(selection);
    if (sel.size) {
      ctx.strokeStyle = "#000";
      for (const i of sel) { const [sx, sy] = toScreen(i); ctx.strokeRect(sx - r, sy - r, 2 * r, 2 * r); }
    }
    if (selected >= 0) {
      ctx.strokeStyle = "#000"; ctx.lineWidth = 1;
      const [qx, qy] = toScreen(selected);
      for (const nb of D.nb[selected]) {
        if (nb[1] < 0) continue;
        const [nx, ny] = toScreen(nb[1]);
        ctx.beginPath(); ctx.moveTo(qx, qy); ctx.lineTo(nx, ny); ctx.stroke();
      }
      ctx.lineWidth = 2; ctx.beginPath(); ctx.arc(qx, qy, r + 4, 0, 7); ctx.stroke(); ctx.lineWidth = 1;
    }
    if (box) {
      ctx.strokeStyle = "#0645ad"; ctx.setLineDash([4, 3]);
      ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]); ctx.setLineDash([]);
    }
    buildGrid();
  }
  function resize() {
    const rect = canvas.getBoundingClientRect();
    canvas.width = Math.max(100, Math.floor(rect.width));
    canvas.height = Math.max(100, Math.floor(rect.height));
    draw();
  }
  function showDetail(i) {
    selected = i;
    const el = document.getElementById("detail");
    if (i < 0) { el.innerHTML = ""; draw(); return; }
    const issues = D.issues[i].length ? D.issues[i].map((t) => `<span class="issue">${esc(t)}</span>`).join(", ") : "none";
    const nbs = D.nb[i].map((nb) => `<li class="nb" data-p="${nb[1]}">${esc(nb[0])} <span class="meta">${nb[2].toFixed(3)}${nb[1] >= 0 && D.issues[nb[1]].length ? " · " + esc(D.issues[nb[1]].join(", ")) : ""}</span><br>${esc(nb[1] >= 0 ? D.text[nb[1]].slice(0, 120) : "")}</li>`).join("");
    el.innerHTML = `<h3>${esc(D.id[i])}</h3><p>${esc(D.text[i])}</p>
      <p>label <b>${esc(className(D.label[i]))}</b> · predicted <b>${esc(className(D.pred[i]))}</b> · split ${esc(D.splits[D.split[i]])}</p>
      <p>issues: ${issues}</p><h4>neighbours (cosine)</h4><ol id="neighbours">${nbs}</ol>`;
    el.querySelectorAll(".nb").forEach((li) => li.addEventListener("click", () => {
      const p = +li.dataset.p; if (p >= 0) showDetail(p);
    }));
    draw();
  }
  function showSelection() {
    const sec = document.getElementById("selection");
    sec.hidden = selection.length === 0;
    document.getElementById("nsel").textContent = selection.length;
    document.getElementById("selids").innerHTML = selection.slice(0, 500).map((i) => `<li>${esc(D.id[i])}</li>`).join("") + (selection.length > 500 ? `<li>… ${selection.length - 500} more</li>` : "");
  }
  // ---- interaction -----------------------------------------------------------------------
  let drag = null;
  canvas.addEventListener("mousedown", (e) => {
    drag = { x: e.offsetX, y: e.offsetY, vx: view.x, vy: view.y, moved: false, select: e.shiftKey };
  });
  canvas.addEventListener("mousemove", (e) => {
    if (drag) {
      const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.select) { box = [Math.min(drag.x, e.offsetX), Math.min(drag.y, e.offsetY), Math.max(drag.x, e.offsetX), Math.max(drag.y, e.offsetY)]; draw(); return; }
      if (drag.moved) { view.x = drag.vx - dx / (view.s * size()); view.y = drag.vy - dy / (view.s * size()); draw(); }
      return;
    }
    const i = nearest(e.offsetX, e.offsetY, 8);
    if (i < 0) { tip.hidden = true; return; }
    tip.hidden = false;
    tip.style.left = (e.offsetX + 14) + "px"; tip.style.top = (e.offsetY + 10) + "px";
    tip.innerHTML = `<b>${esc(D.id[i])}</b> · ${esc(className(D.label[i]))}${D.issues[i].length ? ' · <span style="color:#b00">' + esc(D.issues[i].join(", ")) + "</span>" : ""}<br>${esc(D.text[i])}`;
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  window.addEventListener("mouseup", (e) => {
    if (!drag) return;
    const d = drag; drag = null;
    if (d.select && box) {
      selection = [];
      for (let i = 0; i < N; i++) {
        const [sx, sy] = toScreen(i);
        if (sx >= box[0] && sx <= box[2] && sy >= box[1] && sy <= box[3]) selection.push(i);
      }
      box = null; showSelection(); draw(); return;
    }
    if (!d.moved && e.target === canvas) showDetail(nearest(e.offsetX, e.offsetY, 8));
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [dx, dy] = toData(e.offsetX, e.offsetY);
    const f = Math.exp(-e.deltaY * 0.0015);
    view.s = Math.min(500, Math.max(0.2, view.s * f));
    const [px, py] = pad();
    view.x = dx - (e.offsetX - px) / (view.s * size());
    view.y = (1 - dy) - (e.offsetY - py) / (view.s * size());
    draw();
  }, { passive: false });
  document.getElementById("colour").addEventListener("change", (e) => { mode = e.target.value; legend(); draw(); });
  document.getElementById("clear").addEventListener("click", () => { selection = []; showSelection(); draw(); });
  document.getElementById("export").addEventListener("click", () => {
    const blob = new Blob([selection.map((i) => D.id[i]).join("\n") + "\n"], { type: "text/plain" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = "selected-ids.txt"; a.click();
  });
  window.addEventListener("resize", resize);
  document.getElementById("info").textContent = `${N.toLocaleString()} of ${D.n_items.toLocaleString()} items · ${D.method}`;
  // the page's state, for scripts and tests
  window.embeddingMap = { data: D, toScreen, showDetail, get selection() { return selection.map((i) => D.id[i]); } };
  legend();
  resize();
})();
