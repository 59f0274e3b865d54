// farmtools monitor page: task tree, plot, run/reference selectors, alarm banner, live polling.
// Everything comes from the page's own JSON API (GET only); nothing is loaded from elsewhere.
"use strict";

const pollMs = Number(document.body.dataset.pollMs) || 5000;
const state = { task: null, item: null, perRun: true, digest: null, tasks: {}, event: null };
const EVENT_TASK = "event";  // the event display: its own API and controls

function evInput(id) {
  return document.getElementById(id);
}

function qs() {
  const p = new URLSearchParams();
  p.set("run", document.getElementById("run").value);
  if (state.task === EVENT_TASK) {
    // empty inputs: the newest file of the run and its last event
    if (evInput("ev-seq").value !== "") p.set("seq", evInput("ev-seq").value);
    if (evInput("ev-event").value !== "") p.set("event", evInput("ev-event").value);
  } else if (state.perRun) p.set("ref", document.getElementById("ref").value);
  return p.toString();
}

function plotUrl(want) {
  return state.task === EVENT_TASK ? `/api/event/${state.item}?${qs()}` : `/api/plot/${want}?${qs()}`;
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function loadTree() {
  const tree = await getJSON("/api/tree");
  const nav = document.getElementById("tree");
  nav.textContent = "";
  for (const t of tree) {
    state.tasks[t.name] = t;
    const det = document.createElement("details");
    det.open = true;
    det.dataset.task = t.name;
    const sum = document.createElement("summary");
    sum.textContent = t.title;
    det.appendChild(sum);
    const ul = document.createElement("ul");
    for (const it of t.items) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `#${t.name}/${it.id}`;
      a.textContent = it.title;
      a.dataset.task = t.name;
      a.dataset.item = it.id;
      a.addEventListener("click", (ev) => { ev.preventDefault(); select(t.name, it.id); });
      li.appendChild(a);
      ul.appendChild(li);
    }
    det.appendChild(ul);
    nav.appendChild(det);
  }
  const [task, item] = location.hash.slice(1).split("/");
  if (task && state.tasks[task]) select(task, item);
  else showOverview();  // the shift's first view: every check, the worst on top
}

function select(task, item) {
  state.task = task;
  state.item = item;
  state.perRun = state.tasks[task] ? state.tasks[task].per_run : true;
  state.digest = null;
  history.replaceState(null, "", `#${task}/${item}`);
  hideOverview();
  for (const a of document.querySelectorAll("#tree a")) {
    a.classList.toggle("active", a.dataset.task === task && a.dataset.item === item);
  }
  document.getElementById("ref").disabled = !state.perRun || task === EVENT_TASK;
  document.getElementById("evctl").hidden = task !== EVENT_TASK;
  refreshPlot();
}

async function refreshPlot() {
  if (!state.task || state.overview) return;
  const want = `${state.task}/${state.item}`;
  const err = document.getElementById("error");
  try {
    const res = await getJSON(plotUrl(want));
    if (want !== `${state.task}/${state.item}`) return;  // the user moved on meanwhile
    err.hidden = true;
    if (state.task === EVENT_TASK) showEvent(res.event);
    if (res.digest !== state.digest) {
      state.digest = res.digest;
      const fig = res.figure;
      fig.layout = Object.assign({ autosize: true }, fig.layout);
      await Plotly.react("plot", fig.data, fig.layout, { responsive: true, displaylogo: false });
      document.getElementById("plot").dataset.digest = res.digest;
    }
  } catch (e) {
    err.textContent = `${want}: ${e.message}`;
    err.hidden = false;
  }
}

function showEvent(ev) {
  // what is shown, as placeholders: the inputs stay empty while following the newest event
  state.event = ev;
  evInput("ev-seq").placeholder = ev ? `${ev.seq}` : "newest";
  evInput("ev-event").placeholder = ev ? `${ev.event} of ${ev.n_events}` : "last";
  document.getElementById("plot").dataset.event = ev ? `${ev.run}/${ev.seq}/${ev.event}` : "";
}

function stepEvent(delta) {
  const ev = state.event;
  if (!ev) return;
  const next = ev.event + delta;
  if (next < 0 || next >= ev.n_events) return;
  evInput("ev-seq").value = ev.seq;
  evInput("ev-event").value = next;
  state.digest = null;
  refreshPlot();
}

function fillSelect(sel, runs, fixed) {
  // the fixed choices first ("latest"; "pinned" and "none"), then the runs, newest first
  const keep = sel.value;
  const values = [...fixed, ...runs.map(String)];
  const have = Array.from(sel.options).map((o) => o.value).join(",");
  if (have === values.join(",")) return;
  sel.textContent = "";
  for (const v of values) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = v;
    sel.appendChild(o);
  }
  sel.value = values.includes(keep) ? keep : fixed[0];
}

async function refreshRuns() {
  const runs = await getJSON("/api/runs");
  fillSelect(document.getElementById("run"), runs, ["latest"]);
  // "pinned": each plot overlays its item's pinned reference run (farm.toml or the CLI)
  fillSelect(document.getElementById("ref"), runs, ["pinned", "none"]);
}

async function refreshAlarms() {
  const alarms = await getJSON("/api/alarms");
  const box = document.getElementById("alarms");
  box.textContent = "";
  box.hidden = alarms.length === 0;
  if (!alarms.length) return;
  const title = document.createElement("div");
  title.textContent = `${alarms.length} open alarm${alarms.length > 1 ? "s" : ""}`;
  box.appendChild(title);
  const ul = document.createElement("ul");
  for (const a of alarms.slice(0, 8)) {
    const li = document.createElement("li");
    li.className = "alarm";
    li.dataset.kind = a.kind;
    li.textContent = `${a.time ? a.time.slice(0, 19).replace("T", " ") : ""} [${a.source}] ${a.kind}: ${a.message}`;
    ul.appendChild(li);
  }
  box.appendChild(ul);
}

async function refreshStatus() {
  // problems of the monitor's own inputs: unreadable summary files, a database that is away
  const st = await getJSON("/api/status");
  const box = document.getElementById("status");
  const bad = Object.entries(st.unreadable || {});  // the first 50
  const n = st.unreadable_count || 0;
  const parts = [];
  if (n) parts.push(`${n} unreadable summary file${n > 1 ? "s" : ""}`);
  if (st.totals_error) parts.push("database: " + st.totals_error);
  box.textContent = parts.join("; ");
  box.title = bad.map(([, err]) => err).join("\n");
  box.hidden = parts.length === 0;
}

async function tick() {
  try {
    await Promise.all([
      refreshRuns(), refreshAlarms(), refreshStatus(), refreshPlot(), refreshOverview(),
    ]);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("updated").textContent = "update failed: " + e.message;
  } finally {
    setTimeout(tick, pollMs);
  }
}

document.getElementById("run").addEventListener("change", () => {
  evInput("ev-seq").value = "";  // another run: its newest file's last event
  evInput("ev-event").value = "";
  state.digest = null;
  refreshPlot();
  refreshOverview();
});
document.getElementById("overview-link").addEventListener("click", (ev) => {
  ev.preventDefault();
  showOverview();
});
document.getElementById("ref").addEventListener("change", () => { state.digest = null; refreshPlot(); });
for (const id of ["ev-seq", "ev-event"]) {
  evInput(id).addEventListener("change", () => { state.digest = null; refreshPlot(); });
}
evInput("ev-prev").addEventListener("click", () => stepEvent(-1));
evInput("ev-next").addEventListener("click", () => stepEvent(1));
evInput("ev-latest").addEventListener("click", () => {
  evInput("ev-seq").value = "";
  evInput("ev-event").value = "";
  state.digest = null;
  refreshPlot();
});

loadTree().then(tick);
