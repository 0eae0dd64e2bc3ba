// sigma-bot dashboard: draws the charts from the JSON API, sorts tables, follows new bars (server-sent events),
// and sends operator commands.  The API token is typed by the operator and sent only in a request header.
// In a report file (bot report --html) the figures come embedded in <script id="figures"> instead of the API.
"use strict";

let embedded = null;

function embeddedFigures() {
  if (embedded === null) {
    const el = document.getElementById("figures");
    embedded = el ? JSON.parse(el.textContent) : {};
  }
  return embedded;
}

async function loadFigure(url) {
  const inline = embeddedFigures()[url];
  if (inline) return inline;
  const response = await fetch(url, {cache: "no-store"});
  if (!response.ok) throw new Error("chart unavailable: " + response.status);
  return response.json();
}

async function drawCharts(root) {
  for (const el of root.querySelectorAll("[data-figure]")) {
    try {
      const fig = await loadFigure(el.dataset.figure);
      // The figure's own height on its box: a responsive redraw (a window resize) then keeps it.
      el.style.height = (fig.layout.height || 360) + "px";
      await Plotly.react(el, fig.data, fig.layout, {responsive: true, displaylogo: false});
      el.dataset.traces = String(fig.data.length);
    } catch (err) {
      el.textContent = err && err.message && err.message.startsWith("chart") ? err.message : "chart unavailable";
    }
  }
}

function sortKey(cell) {
  const key = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  const n = Number(key);
  return key !== "" && !Number.isNaN(n) ? n : key.toLowerCase();
}

function makeSortable(root) {
  for (const tableEl of root.querySelectorAll("table.sortable")) {
    tableEl.querySelectorAll("th").forEach((th, col) => {
      th.tabIndex = 0;
      th.title = "sort";
      const sort = () => {
        const body = tableEl.tBodies[0];
        const asc = th.getAttribute("aria-sort") !== "ascending";
        tableEl.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        const rows = Array.from(body.rows).filter((r) => r.cells.length > col);
        rows.sort((a, b) => {
          const x = sortKey(a.cells[col]), y = sortKey(b.cells[col]);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach((r) => body.appendChild(r));
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
    });
  }
}

function wireFilters(root) {
  // A select with data-filter="TABLE_ID" shows only that table's rows whose data-kind it names (report files).
  for (const select of root.querySelectorAll("select[data-filter]")) {
    select.addEventListener("change", () => {
      const tableEl = document.getElementById(select.dataset.filter);
      for (const row of tableEl.tBodies[0].rows) {
        row.hidden = select.value !== "" && row.dataset.kind !== select.value;
      }
    });
  }
}

function wireControls(root) {
  const form = root.querySelector("#controls");
  if (!form) return;
  for (const button of form.querySelectorAll("button[data-command]")) {
    button.addEventListener("click", async () => {
      const out = form.querySelector("#control-result");
      const token = form.elements.token.value;
      if (!token) { out.textContent = "enter the API token"; return; }
      const response = await fetch(form.dataset.url, {
        method: "POST",
        headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token},
        body: JSON.stringify({command: button.dataset.command, note: form.elements.note.value}),
      });
      const answer = await response.json().catch(() => ({}));
      out.textContent = response.ok ? `command #${answer.command_id} (${answer.command}) queued: taken at the next bar`
                                    : `refused (${response.status}): ${answer.detail || ""}`;
    });
  }
}

async function refresh() {
  // A new bar: fetch this page again and swap its content in place (no reload, scroll kept).
  const response = await fetch(window.location.href, {cache: "no-store"});
  if (!response.ok) return;
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = doc.querySelector("main");
  const token = document.querySelector("#controls input[name=token]");
  const kept = token ? token.value : "";
  document.querySelector("main").replaceWith(fresh);
  const again = document.querySelector("#controls input[name=token]");
  if (again) again.value = kept;
  makeSortable(fresh);
  wireControls(fresh);
  await drawCharts(fresh);
}

function follow() {
  const url = document.body.dataset.events;
  const live = document.getElementById("live");
  if (!url || !window.EventSource) return;
  const source = new EventSource(url);
  source.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
  source.addEventListener("error", () => { live.textContent = "reconnecting"; live.classList.remove("on"); });
  source.addEventListener("bar", async (event) => {
    const bar = JSON.parse(event.data);
    live.textContent = "live: bar " + bar.bar_utc;
    document.body.dataset.lastBar = String(bar.bar_ms);
    await refresh();
    document.body.dataset.refreshed = String(bar.bar_ms);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  makeSortable(document);
  wireFilters(document);
  wireControls(document);
  drawCharts(document);
  follow();
});
