"use strict";
// The analyse page: pick or drop a file, POST its bytes to /api/analyse, draw the answer.
let info = { classes: [], max_upload_bytes: Infinity, accepted: [] };
const $ = (id) => document.getElementById(id);

function colourOf(genre, classes) {
  const i = classes.indexOf(genre);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function mib(bytes) { return (bytes / 1048576).toFixed(1) + " MiB"; }

async function loadInfo() {
  try {
    const response = await fetch("/api/info");
    info = await response.json();
    $("model").textContent = info.model;
    $("limits").textContent = info.accepted.join(", ").replaceAll(".", "") + " · up to " +
      mib(info.max_upload_bytes) + " and " + Math.round(info.max_seconds / 60) + " minutes";
  } catch (e) {
    showError("The server is not answering", String(e));
  }
}

function setBusy(busy, text) {
  $("status").hidden = !busy;
  $("status-text").textContent = text || "";
  $("drop").classList.toggle("busy", busy);
  $("file").disabled = busy;
}

async function analyse(file) {
  $("error").hidden = true;
  $("result").hidden = true;
  if (file.size > info.max_upload_bytes) {
    showError("This file is too large", `${file.name} is ${mib(file.size)}; the limit is ` +
      `${mib(info.max_upload_bytes)} per song.`);
    return;
  }
  setBusy(true, `Analysing ${file.name}… (features of every window, then the model)`);
  const started = performance.now();
  try {
    const response = await fetch("/api/analyse", {
      method: "POST",
      body: file,
      headers: { "Content-Type": "application/octet-stream", "X-Filename": encodeURIComponent(file.name) },
    });
    let body;
    try { body = await response.json(); } catch (e) { body = { title: `Server error ${response.status}` }; }
    if (!response.ok) {
      showError(body.title || "This file cannot be analysed", body.detail || "");
      return;
    }
    render(body, (performance.now() - started) / 1000);
  } catch (e) {
    showError("The upload failed", "The server could not be reached: " + e.message);
  } finally {
    setBusy(false);
    $("file").value = "";  // the same file can be chosen again
  }
}

function render(answer, seconds) {
  const classes = info.classes.length ? info.classes : Object.keys(answer.probabilities);
  $("result-file").textContent = `${answer.file} · ${answer.windows} window(s) · ${seconds.toFixed(1)} s`;
  $("genre").textContent = answer.genre;
  $("genre").style.color = colourOf(answer.genre, classes);
  drawBars($("chart"), answer.probabilities, classes, answer.genre);
  const tags = Object.entries(answer.tags || {});
  $("tags-box").hidden = !tags.length;
  $("tags").replaceChildren(...tags.map(([tag, p]) =>
    el("span", { class: "tag", "data-tag": tag, title: `${(100 * p).toFixed(0)} %` }, tag)));
  const box = $("timeline-box");
  if (answer.timeline && answer.timeline.length) {
    box.hidden = false;
    $("timeline-note").textContent = answer.partial
      ? `The song (${answer.window_seconds.toFixed(1)} s) is shorter than the model's window: scored over all of it.`
      : answer.timeline.length === 1
      ? `One ${answer.window_seconds.toFixed(1)}-s window: the song is shorter than two windows.`
      : `${answer.timeline.length} windows of ${answer.window_seconds.toFixed(1)} s` +
        (answer.timeline.length > 1 && answer.timeline[1].start_s - answer.timeline[0].end_s > 1
          ? " spread over the song" : "") +
        "; each column shows that window's probabilities, the song's answer is their mean" +
        (answer.agreement == null ? "." : ` (${Math.round(100 * answer.agreement)} % of them agree).`);
    drawTimeline($("timeline"), answer.timeline, classes);
    drawLegend($("legend"), classes);
  } else {
    box.hidden = true;
  }
  $("model-version").textContent = answer.model;
  $("result").hidden = false;
}

// Horizontal bars, most likely first; SVG in a viewBox so it scales to any width. The label column is
// as wide as the longest genre name (7.5 units a character at 12 px, bold included), so no name is cut.
function drawBars(target, probabilities, classes, winner) {
  const entries = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  const longest = Math.max(...entries.map(([genre]) => genre.length));
  const row = 26, label = Math.max(92, Math.ceil(7.5 * longest) + 12), value = 48, width = label + 220 + value;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${row * entries.length}`, role: "img",
    "aria-label": "probability of each genre", class: "bars" });
  entries.forEach(([genre, p], i) => {
    const y = i * row;
    const g = svg("g", { class: "bar", "data-genre": genre, "data-probability": p.toFixed(4) });
    g.appendChild(svg("text", { x: label - 6, y: y + row / 2 + 4, "text-anchor": "end",
      class: genre === winner ? "winner" : "" }, genre));
    g.appendChild(svg("rect", { x: label, y: y + 4, height: row - 8, rx: 3, class: "track",
      width: width - label - value }));
    g.appendChild(svg("rect", { x: label, y: y + 4, height: row - 8, rx: 3,
      width: Math.max(1, p * (width - label - value)), fill: colourOf(genre, classes) }));
    g.appendChild(svg("text", { x: width - 4, y: y + row / 2 + 4, "text-anchor": "end", class: "value" },
      (100 * p).toFixed(1) + " %"));
    chart.appendChild(g);
  });
  target.replaceChildren(chart);
}

// One stacked column per window: the timeline of a long song.
// Columns are the analysed windows in time order (a long song: excerpts spread over all of it), so the
// ticks name the start of the window under them, and the last one the end of the last window.
function drawTimeline(target, timeline, classes) {
  const height = 120, axis = 18, width = 360;
  const step = width / timeline.length;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + axis}`, role: "img",
    "aria-label": "genre probabilities window by window", class: "stack" });
  timeline.forEach((w, i) => {
    let y = height;
    const col = svg("g", { class: "window", "data-start": w.start_s });
    for (const genre of classes) {
      const h = (w.probabilities[genre] || 0) * height;
      if (h <= 0) continue;
      y -= h;
      const r = svg("rect", { x: i * step, y, width: Math.max(step - 1, 0.5), height: h,
        fill: colourOf(genre, classes) });
      r.appendChild(svg("title", {}, `${w.start_s.toFixed(0)} s: ${genre} ${(100 * w.probabilities[genre]).toFixed(0)} %`));
      col.appendChild(r);
    }
    chart.appendChild(col);
  });
  const ticks = Math.min(timeline.length, 6);
  for (let t = 0; t <= ticks; t++) {
    const x = Math.min(width - 1, (t / ticks) * width);
    const i = Math.min(timeline.length - 1, Math.floor((t / ticks) * timeline.length));
    const secs = t === ticks ? timeline[timeline.length - 1].end_s : timeline[i].start_s;
    chart.appendChild(svg("text", { x, y: height + 14, "text-anchor": t === 0 ? "start" : t === ticks ? "end" : "middle",
      class: "tick" }, `${Math.round(secs)} s`));
  }
  target.replaceChildren(chart);
}

function drawLegend(target, classes) {
  target.replaceChildren(...classes.map((genre) => {
    const item = el("span", {}, genre);
    item.style.setProperty("--swatch", colourOf(genre, classes));
    return item;
  }));
}

function setUp() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { if (e.target.files.length) analyse(e.target.files[0]); });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => {
    if ($("file").disabled) return;
    const file = e.dataTransfer.files[0];
    if (file) analyse(file);
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  loadInfo();
}

setUp();
