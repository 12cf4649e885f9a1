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

// Live deployment states: follow the audit log's event stream, and on any event about a
// deployment shown here, fetch it and update its fields. No reload needed.
function fill(container, deployment) {
  for (const field of container.querySelectorAll("[data-field]")) {
    const name = field.dataset.field;
    const value = deployment[name] === null || deployment[name] === undefined ? "" : String(deployment[name]);
    field.textContent = value;
    if (name === "state") field.className = "state " + value;
  }
}

function refresh(name) {
  const containers = document.querySelectorAll(
    `[data-deployment="${CSS.escape(name)}"], [data-live-deployment="${CSS.escape(name)}"]`
  );
  if (containers.length === 0) return;
  fetch(`/api/v1/deployments/${encodeURIComponent(name)}`, { credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : null))
    .then((deployment) => {
      if (!deployment) return;
      for (const container of containers) {
        fill(container.tagName === "H1" ? document : container, deployment);
      }
    });
}

const watched = document.querySelectorAll("[data-deployment], [data-live-deployment]");
if (watched.length > 0 && window.EventSource) {
  const stream = new EventSource("/api/v1/events/stream");
  const onEvent = (event) => {
    const data = JSON.parse(event.data);
    if (data.action && data.action.startsWith("deployment.")) refresh(data.target);
  };
  for (const state of ["created", "start", "stop", "pending", "starting", "running", "stopping", "stopped",
                       "failed", "deleted", "rolled_out", "rollout_failed"]) {
    stream.addEventListener("deployment." + state, onEvent);
  }
}

// The log of a deployment, followed as it is written.
const log = document.querySelector("[data-log]");
if (log && window.fetch && window.TextDecoder) {
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
  });
}

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
