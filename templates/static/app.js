// Progressive enhancement only: every action works without this file.
"use strict";

// "/" focuses the search box, as on most sites with one.
document.addEventListener("keydown", (event) => {
  const search = document.getElementById("q");
  if (event.key === "/" && search && document.activeElement !== search) {
    event.preventDefault();
    search.focus();
  }
});

// Live deployments: follow the audit log's event stream. An event about a deployment shown
// here fetches it and updates its fields; on the deployments table a deployment created
// elsewhere (another user, the API) gets a row and a deleted one loses it. No reload needed.
const liveTable = document.querySelector("[data-live-deployments]");
const livePage = document.querySelector("[data-live-deployment]");

function gpuText(allocation) {
  if (!allocation) return "—";
  if (allocation.kind === "exclusive") return "GPU " + allocation.device_ids.join(", ");
  if (allocation.kind === "shared") return `${allocation.memory_gib} GiB of GPU ${allocation.device_id}`;
  return "—";
}

function uptimeText(seconds) {
  if (seconds < 60) return `${Math.max(0, Math.floor(seconds))} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

// Uptime cells count up while their deployment runs; without this script they show the
// start time instead.
function tickUptimes() {
  for (const time of document.querySelectorAll("time[data-field=started_at]")) {
    const scope = time.closest("[data-deployment]") || document;
    const state = scope.querySelector("[data-field=state]");
    const since = Date.parse(time.getAttribute("datetime") || "");
    const running = state && state.textContent === "running" && !Number.isNaN(since);
    time.textContent = running ? uptimeText((Date.now() - since) / 1000) : "—";
    time.title = running ? `since ${time.getAttribute("datetime")}` : "";
  }
}

function fill(container, deployment) {
  for (const field of container.querySelectorAll("[data-field]")) {
    const name = field.dataset.field;
    const raw = deployment[name];
    if (name === "gpus") {
      field.textContent = gpuText(raw);
    } else if (name === "started_at") {
      field.setAttribute("datetime", raw || "");
    } else {
      field.textContent = raw === null || raw === undefined ? "" : String(raw);
    }
    if (name === "state") field.className = "state " + field.textContent;
  }
  tickUptimes();
}

// A row like the server renders, built from the API's view with text nodes only.
function newRow(d) {
  const row = document.createElement("tr");
  row.dataset.deployment = d.name;
  const labels = Array.from(liveTable.tHead.rows[0].cells, (th) => th.textContent);
  const cell = (field) => {
    const td = row.insertCell();
    td.dataset.label = labels[td.cellIndex] || "";
    if (field) td.dataset.field = field;
    return td;
  };
  const link = document.createElement("a");
  link.href = `/deployments/${encodeURIComponent(d.name)}`;
  link.textContent = d.name;
  const first = cell();
  first.append(link);
  if (d.autostart) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.title = "Starts on its first request";
    tag.textContent = "autostart";
    first.append(" ", tag);
  }
  const serves = cell();
  const runtime = document.createElement("small");
  runtime.textContent = `(${d.runtime})`;
  serves.append(`${d.target} `, runtime);
  const state = document.createElement("span");
  state.dataset.field = "state";
  cell().append(state);
  cell("version");
  cell("gpus");
  const time = document.createElement("time");
  time.dataset.field = "started_at";
  cell().append(time);
  cell().textContent = "0";
  cell("restarts");
  cell("reason").className = "description";
  fill(row, d);
  return row;
}

function showEmpty() {
  if (!liveTable) return;
  const empty = liveTable.tBodies[0].rows.length === 0;
  liveTable.hidden = empty;
  const note = document.querySelector("[data-live-empty]");
  if (note) note.hidden = !empty;
}

function rowOf(name) {
  return liveTable && liveTable.querySelector(`tr[data-deployment="${CSS.escape(name)}"]`);
}

function insertRow(row) {
  const body = liveTable.tBodies[0];
  const after = Array.from(body.rows).find((r) => r.dataset.deployment > row.dataset.deployment);
  body.insertBefore(row, after || null);
  showEmpty();
}

// The try-it panel and the log follow the state: shown while it runs.
function followState(deployment) {
  const panel = document.querySelector("[data-try-panel]");
  if (panel) panel.hidden = deployment.state !== "running";
  if (deployment.state === "running") followLog();
}

function addEvent(event) {
  const table = document.querySelector("[data-live-events]");
  if (!table) return;
  const row = table.tBodies[0].insertRow(0);
  const labels = Array.from(table.tHead.rows[0].cells, (th) => th.textContent);
  const cell = () => {
    const td = row.insertCell();
    td.dataset.label = labels[td.cellIndex] || "";
    return td;
  };
  for (const text of [event.at, event.action, event.actor || ""]) cell().textContent = text;
  const details = cell();
  details.className = "description";
  const code = document.createElement("code");
  code.textContent = JSON.stringify(event.details);
  details.append(code);
  table.hidden = false;
  const none = document.querySelector("[data-live-events-empty]");
  if (none) none.hidden = true;
}

function refresh(name, action) {
  const row = rowOf(name);
  const here = livePage && livePage.dataset.liveDeployment === name;
  if (action === "deployment.deleted") {
    if (row) row.remove();
    showEmpty();
    if (here) {
      fill(livePage, { state: "deleted" });
      followState({ state: "deleted" });
    }
    return;
  }
  if (!row && !here && !liveTable) return;
  fetch(`/api/v1/deployments/${encodeURIComponent(name)}`, { credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : null))
    .then((deployment) => {
      if (!deployment) return;
      const current = rowOf(name);
      if (current) fill(current, deployment);
      else if (liveTable) insertRow(newRow(deployment));
      if (here) {
        fill(document, deployment);
        followState(deployment);
      }
    });
}

if ((liveTable || livePage) && window.EventSource) {
  const stream = new EventSource("/api/v1/events/stream");
  const onEvent = (event) => {
    const data = JSON.parse(event.data);
    if (!data.action || !data.action.startsWith("deployment.")) return;
    refresh(data.target, data.action);
    if (livePage && livePage.dataset.liveDeployment === data.target) addEvent(data);
  };
  for (const state of ["created", "start", "stop", "pending", "starting", "running", "stopping", "stopped",
                       "failed", "deleted", "rolled_out", "rollout_failed"]) {
    stream.addEventListener("deployment." + state, onEvent);
  }
  // What changed between the page's render and the stream's start (a stop that finished
  // meanwhile, say) sent no event this stream will see: read the state once it is open.
  stream.addEventListener("open", () => {
    if (livePage) refresh(livePage.dataset.liveDeployment, "deployment.opened");
    if (liveTable) {
      for (const row of Array.from(liveTable.querySelectorAll("tr[data-deployment]"))) {
        refresh(row.dataset.deployment, "deployment.opened");
      }
    }
  });
}
tickUptimes();
setInterval(tickUptimes, 1000);

// The log of a deployment, followed as it is written, from when it runs.
const log = document.querySelector("[data-log]");
let following = false;
function followLog() {
  if (!log || following || !window.fetch || !window.TextDecoder) return;
  following = true;
  fetch(`/api/v1/deployments/${encodeURIComponent(log.dataset.log)}/logs?tail=200&follow=true`, {
    credentials: "same-origin",
  }).then(async (response) => {
    if (!response.ok || !response.body) return;
    log.textContent = "";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      log.textContent += decoder.decode(value, { stream: true });
      log.scrollTop = log.scrollHeight;
    }
  }).finally(() => { following = false; });
}
followLog();

// Copy buttons: data-copy names the id of the field to copy.
for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", () => {
    const field = document.getElementById(button.dataset.copy);
    if (!field) return;
    field.select();
    const done = () => { button.textContent = "Copied"; };
    if (navigator.clipboard) navigator.clipboard.writeText(field.value).then(done, () => document.execCommand("copy"));
    else if (document.execCommand("copy")) done();
  });
}

const csrfToken = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

// SHA-256 over a File read in slices, so a file of any size is hashed in constant memory
// (crypto.subtle.digest wants the whole file in memory at once).
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

class Sha256 {
  constructor() {
    this.h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this.w = new Uint32Array(64);
    this.tail = new Uint8Array(64);
    this.tailLength = 0;
    this.length = 0;
  }

  block(bytes, at) {
    const w = this.w;
    for (let i = 0; i < 16; i++) {
      w[i] = (bytes[at + 4 * i] << 24) | (bytes[at + 4 * i + 1] << 16) | (bytes[at + 4 * i + 2] << 8) | bytes[at + 4 * i + 3];
    }
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15], b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, h] = this.h;
    for (let i = 0; i < 64; i++) {
      const t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    const s = this.h;
    s[0] += a; s[1] += b; s[2] += c; s[3] += d; s[4] += e; s[5] += f; s[6] += g; s[7] += h;
  }

  update(bytes) {
    this.length += bytes.length;
    let at = 0;
    if (this.tailLength > 0) {
      const take = Math.min(64 - this.tailLength, bytes.length);
      this.tail.set(bytes.subarray(0, take), this.tailLength);
      this.tailLength += take;
      at = take;
      if (this.tailLength < 64) return;
      this.block(this.tail, 0);
      this.tailLength = 0;
    }
    for (; at + 64 <= bytes.length; at += 64) this.block(bytes, at);
    this.tail.set(bytes.subarray(at), 0);
    this.tailLength = bytes.length - at;
  }

  hex() {
    const bits = this.length * 8;
    const pad = new Uint8Array(this.tailLength < 56 ? 64 - this.tailLength : 128 - this.tailLength);
    pad[0] = 0x80;
    const view = new DataView(pad.buffer);
    view.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(pad.length - 4, bits >>> 0);
    this.update(pad);
    return Array.from(this.h, (x) => x.toString(16).padStart(8, "0")).join("");
  }
}

async function hashFile(file, onProgress) {
  const sha = new Sha256();
  const slice = 8 << 20;
  for (let at = 0; at < file.size; at += slice) {
    sha.update(new Uint8Array(await file.slice(at, at + slice).arrayBuffer()));
    onProgress(Math.min(at + slice, file.size));
  }
  return "sha256:" + sha.hex();
}

const api = (path) => "/api/v1/models/" + path.split("/").map(encodeURIComponent).join("/");

function human(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

// PUT with the browser streaming the File from disk, reporting progress, speed and ETA.
function put(url, file, report) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const started = performance.now();
    xhr.open("PUT", url);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.upload.onprogress = (event) => {
      const seconds = (performance.now() - started) / 1000;
      const speed = event.loaded / Math.max(seconds, 0.001);
      const eta = speed > 0 ? (event.total - event.loaded) / speed : 0;
      report(event.loaded, `${human(speed)}/s, ${Math.ceil(eta)} s left`);
    };
    xhr.onload = () => (xhr.status < 300 ? resolve() : reject(new Error(`${xhr.status}: ${xhr.responseText}`)));
    xhr.onerror = () => reject(new Error("the connection failed"));
    xhr.send(file);
  });
}

async function json(method, url, body) {
  const response = await fetch(url, {
    method, credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

// Every entry of a dropped directory, however many: readEntries answers in batches.
function readAllEntries(directory) {
  const reader = directory.createReader();
  const all = [];
  return new Promise((resolve, reject) => {
    const next = () => reader.readEntries((batch) => {
      if (batch.length === 0) {
        resolve(all);
      } else {
        all.push(...batch);
        next();
      }
    }, reject);
    next();
  });
}

// Calls add(file, path) for each file under entries, folders walked in full.
async function walkEntries(entries, prefix, add) {
  for (const entry of entries) {
    if (entry.isFile) {
      add(await new Promise((resolve, reject) => entry.file(resolve, reject)), prefix + entry.name);
    } else if (entry.isDirectory) {
      await walkEntries(await readAllEntries(entry), `${prefix}${entry.name}/`, add);
    }
  }
}

const uploadForm = document.querySelector("[data-upload]");
if (uploadForm) {
  const model = uploadForm.dataset.upload;
  const picked = [];
  const table = document.querySelector("[data-progress]");
  const add = (file, path) => picked.push({ file, path: path || file.webkitRelativePath || file.name });
  document.getElementById("ufiles").addEventListener("change", (e) => { for (const f of e.target.files) add(f); });
  document.getElementById("ufolder").addEventListener("change", (e) => {
    // The picked folder's own name is not part of the version's paths.
    for (const f of e.target.files) add(f, f.webkitRelativePath.split("/").slice(1).join("/"));
  });
  const drop = uploadForm.querySelector("[data-drop]");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  // Folders are read in full: readEntries gives a directory's entries in batches (100 at a
  // time in Chromium) and must be called until it gives an empty one.
  let dropped = Promise.resolve();
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    // The items are only readable during the event itself; their entries stay valid.
    const entries = Array.from(e.dataTransfer.items, (item) => item.webkitGetAsEntry && item.webkitGetAsEntry())
      .filter(Boolean);
    dropped = dropped
      .then(() => Promise.all(entries.map((entry) => (entry.isDirectory
        // A dropped folder's own name is not part of the version's paths.
        ? readAllEntries(entry).then((children) => walkEntries(children, "", add))
        : walkEntries([entry], "", add)))))
      .then(() => { drop.textContent = `${picked.length} file(s) ready to upload`; })
      .catch((error) => { drop.textContent = `Could not read what was dropped: ${error.message || error}`; });
  });

  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = uploadForm.querySelector("button[type=submit]");
    button.disabled = true;
    table.hidden = false;
    const done = document.querySelector("[data-upload-done]");
    try {
      await dropped;
      const requested = document.getElementById("uversion").value.trim();
      const version = await json("POST", api(model) + "/versions", requested ? { version: requested } : {});
      const name = version.version;
      for (const { file, path } of picked) {
        const row = table.tBodies[0].insertRow();
        row.dataset.file = path;
        row.insertCell().textContent = `${path} (${human(file.size)})`;
        const bar = document.createElement("progress");
        bar.max = Math.max(file.size, 1);
        bar.value = 0;
        row.insertCell().append(bar);
        const status = row.insertCell();
        status.textContent = "hashing";
        const digest = await hashFile(file, (n) => { bar.value = n; });
        const target = api(model) + `/versions/${encodeURIComponent(name)}/files/` + path.split("/").map(encodeURIComponent).join("/");
        const known = await fetch(`/api/v1/blobs/${digest}`, { method: "HEAD", credentials: "same-origin" });
        if (known.ok) {
          await json("POST", target, { digest, size: file.size });
          bar.value = bar.max;
          status.textContent = "already stored: linked, not sent";
        } else {
          bar.value = 0;
          await put(`${target}?digest=${digest}`, file, (n, rate) => { bar.value = n; status.textContent = rate; });
          bar.value = bar.max;
          status.textContent = "uploaded, verified";
        }
      }
      if (document.getElementById("upublish").checked) {
        await json("POST", api(model) + `/versions/${encodeURIComponent(name)}/publish`);
        const alias = document.getElementById("ualias").value.trim();
        if (alias) await json("PUT", api(model) + `/aliases/${encodeURIComponent(alias)}`, { version: name });
      }
      done.hidden = false;
      done.textContent = `Version ${name} is up.`;
      const link = document.createElement("a");
      link.href = `/models/${model}/versions/${encodeURIComponent(name)}`;
      link.textContent = " See it.";
      done.append(link);
    } catch (error) {
      done.hidden = false;
      done.className = "error";
      done.textContent = `Upload failed: ${error.message}`;
      button.disabled = false;
    }
  });
}

// Try-it: send a chat message to a running OpenAI deployment and stream the answer in.
const tryIt = document.querySelector("[data-try]");
if (tryIt) {
  tryIt.addEventListener("submit", async (event) => {
    event.preventDefault();
    const output = document.querySelector("[data-try-output]");
    output.textContent = "";
    delete output.dataset.done;
    const message = document.getElementById("tmessage").value;
    const response = await fetch("/v1/chat/completions", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify({ model: tryIt.dataset.try, stream: true, messages: [{ role: "user", content: message }] }),
    });
    if (!response.ok || !response.body) {
      output.textContent = `Error ${response.status}: ${await response.text()}`;
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame.startsWith("data: ") ? frame.slice(6) : "";
        if (!data || data === "[DONE]") continue;
        const delta = JSON.parse(data).choices?.[0]?.delta?.content;
        if (delta) output.textContent += delta;
      }
    }
    output.dataset.done = "true";
  });
}

// Charts the server redraws: every 30 s, the fragment at `url` replaces `element`'s
// content, keeping open the tables a reader opened.
function redrawEvery30s(element, url) {
  setInterval(async () => {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    const open = Array.from(element.querySelectorAll("details"), (d) => d.open);
    element.innerHTML = await response.text();
    element.querySelectorAll("details").forEach((d, i) => { d.open = open[i] || false; });
  }, 30000);
}

// The system page's memory charts, the usage page's and a deployment's traffic charts.
const memoryCharts = document.querySelector("[data-memory-charts]");
if (memoryCharts) redrawEvery30s(memoryCharts, "/system/memory");
const usageView = document.querySelector("[data-usage-view]");
if (usageView) redrawEvery30s(usageView, usageView.dataset.usageView);
const trafficCharts = document.querySelector("[data-traffic-charts]");
if (trafficCharts) {
  redrawEvery30s(trafficCharts, `/deployments/${encodeURIComponent(trafficCharts.dataset.trafficCharts)}/traffic`);
}
