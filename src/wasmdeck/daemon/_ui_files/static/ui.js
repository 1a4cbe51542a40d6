// wasmdeck's local UI: the little JavaScript it has. Text from the host (binding
// names, results, errors) is written with textContent, never as HTML.
"use strict";

// `wasmdeck ui` prints /ui/login#token=...: the fragment never reaches a server
// or a log; it fills the form and sends it once.
function loginFromFragment() {
  const form = document.getElementById("login");
  if (!form || !location.hash.startsWith("#token=")) return;
  const token = decodeURIComponent(location.hash.slice("#token=".length));
  history.replaceState(null, "", location.pathname);
  document.getElementById("token").value = token;
  form.submit();
}

function confirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

function followEvents() {
  const table = document.getElementById("events");
  if (!table || !window.EventSource) return;
  const body = table.tBodies[0];
  const state = document.getElementById("live-state");
  const source = new EventSource(table.dataset.stream);
  source.onopen = () => { state.textContent = "Live."; };
  source.onerror = () => { state.textContent = "Reconnecting..."; };
  source.onmessage = (message) => {
    const e = JSON.parse(message.data);
    const row = document.createElement("tr");
    row.className = e.outcome === "error" ? "error" : "ok";
    for (const value of [e.time, e.binding, e.trigger, e.action, e.outcome, e.result, e.ms]) {
      const cell = document.createElement("td");
      cell.textContent = value === null || value === undefined ? "" : String(value);
      row.appendChild(cell);
    }
    row.cells[5].className = "result";
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  };
}

document.addEventListener("DOMContentLoaded", () => {
  loginFromFragment();
  confirmForms();
  followEvents();
});
