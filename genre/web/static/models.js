"use strict";
// The versions page: /api/models as a table, with links into the MLflow UI.
function score(scores, name) {
  return name in scores ? scores[name].toFixed(3) : "–";
}

async function load() {
  let body;
  try {
    const response = await fetch("/api/models");
    body = await response.json();
  } catch (e) {
    showError("The server is not answering", String(e));
    return;
  }
  document.getElementById("name").textContent = body.name;
  document.getElementById("ui").textContent = body.mlflow_ui || "not configured";
  const rows = document.querySelector("#versions tbody");
  if (!body.versions.length) {
    showError("No registered versions", `Register one with: genre register (model ${body.name}).`);
    return;
  }
  for (const v of body.versions) {
    const tr = el("tr", { "data-version": v.version });
    tr.appendChild(el("td", {}, v.version));
    const aliases = el("td");
    for (const a of v.aliases) aliases.appendChild(el("span", { class: "alias" }, "@" + a));
    tr.appendChild(aliases);
    tr.appendChild(el("td", {}, v.model || "?"));
    tr.appendChild(el("td", {}, v.features || "gtzan57"));
    tr.appendChild(el("td", {}, (v.protocol || "?") + (v.leaky === "true" ? " (leaky)" : "")));
    tr.appendChild(el("td", { class: "num", "data-score": "test_accuracy" }, v.test_accuracy == null ? "–" : v.test_accuracy.toFixed(3)));
    for (const s of ["accuracy", "f1_macro", "track_accuracy"]) {
      tr.appendChild(el("td", { class: "num", "data-score": s }, score(v.scores, s)));
    }
    const links = el("td");
    if (v.source_run_url) links.appendChild(el("a", { href: v.source_run_url, target: "_blank", rel: "noopener" }, "training run"));
    if (v.registration_run_url) {
      if (links.childNodes.length) links.appendChild(document.createTextNode(" · "));
      links.appendChild(el("a", { href: v.registration_run_url, target: "_blank", rel: "noopener" }, "registration run"));
    }
    if (!links.childNodes.length) links.textContent = (v.source_run_id || "").slice(0, 8);
    tr.appendChild(links);
    rows.appendChild(tr);
  }
}

load();
