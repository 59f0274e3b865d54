// The overview: every task item's check as a coloured cell, the worst state on top, the current
// and reference runs named; a click on a cell opens its plot.  Data: /api/overview (GET only).
// Loaded before monitor.js, whose `state`, `select` and `getJSON` it uses at call time.
"use strict";

const STATE_TEXT = {
  none: "no check", good: "good", too_few: "too few entries", warning: "warning", error: "error",
};

function showOverview() {
  state.overview = true;
  state.task = null;
  history.replaceState(null, "", "#overview");
  for (const a of document.querySelectorAll("#tree a")) a.classList.remove("active");
  document.getElementById("overview-link").classList.add("active");
  document.getElementById("plot").hidden = true;
  document.getElementById("overview").hidden = false;
  document.getElementById("ref").disabled = true;
  document.getElementById("evctl").hidden = true;
  refreshOverview();
}

function hideOverview() {
  state.overview = false;
  document.getElementById("overview-link").classList.remove("active");
  document.getElementById("overview").hidden = true;
  document.getElementById("plot").hidden = false;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function refreshOverview() {
  if (!state.overview) return;
  const run = document.getElementById("run").value;
  const err = document.getElementById("error");
  let ov;
  try {
    ov = await getJSON(`/api/overview?run=${encodeURIComponent(run)}`);
  } catch (e) {  // the database away, say: named above the last overview shown
    err.textContent = e.message;
    err.hidden = false;
    return;
  }
  err.hidden = true;
  const box = document.getElementById("overview");
  const digest = JSON.stringify(ov);
  if (box.dataset.digest === digest) return;
  box.dataset.digest = digest;
  box.textContent = "";

  const top = el("div", `ov-worst state-${ov.worst}`);
  top.id = "ov-worst";
  top.dataset.state = ov.worst;
  const runs = `run ${ov.run === null ? "none yet" : ov.run}` +
    (ov.reference !== null ? `, reference run ${ov.reference}` : ", no reference run pinned for all items");
  top.appendChild(el("div", "ov-title", `${STATE_TEXT[ov.worst].toUpperCase()} \u2014 ${runs}`));
  if (ov.worst_cells.length) {
    const ul = el("ul");
    for (const c of ov.worst_cells.slice(0, 6)) {
      ul.appendChild(el("li", "", `${c.task}/${c.item}: ${c.reason}`));
    }
    top.appendChild(ul);
  }
  box.appendChild(top);

  for (const t of ov.tasks) {
    const group = el("div", "ov-task");
    group.dataset.task = t.name;
    group.appendChild(el("h3", `state-${t.state}`, t.title + (t.per_run ? "" : " (farm, recent window)")));
    const cells = el("div", "ov-cells");
    for (const c of t.cells) {
      const cell = el("a", `ov-cell state-${c.state}`);
      cell.href = `#${c.task}/${c.item}`;
      cell.dataset.task = c.task;
      cell.dataset.item = c.item;
      cell.dataset.state = c.state;
      cell.title = `${STATE_TEXT[c.state]}: ${c.reason}` +
        (c.reference !== null ? ` (reference run ${c.reference})` : "");
      cell.appendChild(el("span", "ov-name", c.title));
      cell.appendChild(el("span", "ov-reason", c.reason));
      cell.addEventListener("click", (ev) => { ev.preventDefault(); select(c.task, c.item); });
      cells.appendChild(cell);
    }
    group.appendChild(cells);
    box.appendChild(group);
  }
}
