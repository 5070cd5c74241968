// Golden Hour console: running clocks and live updates. Plain JavaScript, no build step.
"use strict";

// Minutes since last seen, every second; the colour turns as the golden hour nears and passes.
function tickClocks() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-since]")) {
    const minutes = Math.max(0, Math.floor((now - Date.parse(el.dataset.since)) / 60000));
    const mins = el.querySelector(".mins");
    if (mins && mins.textContent !== String(minutes)) mins.textContent = String(minutes);
    el.classList.toggle("ok", minutes < 45);
    el.classList.toggle("near", minutes >= 45 && minutes < 60);
    el.classList.toggle("over", minutes >= 60);
  }
}

// Replace one part of the page with a fresh copy from the server.
async function refresh(url, target) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (response.redirected || response.status === 401) { window.location.reload(); return; }
  if (!response.ok) return;
  // A keyboard user keeps their place: focus returns to the same link of the same alert.
  const focused = target.contains(document.activeElement) ? document.activeElement : null;
  const row = focused && focused.closest("[data-alert-id]");
  target.innerHTML = await response.text();
  if (row) {
    const again = target.querySelector(`[data-alert-id="${row.dataset.alertId}"] a`);
    if (again) again.focus();
  }
  tickClocks();
  const stamp = document.getElementById("board-updated");
  if (stamp) stamp.textContent = new Date().toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function live(feedUrl, onChange) {
  const state = document.getElementById("live-state");
  const source = new EventSource(feedUrl);
  source.addEventListener("ready", () => { if (state) state.textContent = "Live"; onChange("*"); });
  source.addEventListener("change", (e) => onChange(e.data));
  source.addEventListener("signed-out", () => window.location.reload());
  source.onerror = () => { if (state) state.textContent = "Reconnecting…"; };
}

document.addEventListener("DOMContentLoaded", () => {
  tickClocks();
  setInterval(tickClocks, 1000);
  const board = document.getElementById("board");
  if (board) {
    const rows = document.getElementById("board-rows");
    live(board.dataset.live, () => refresh("/console/board/rows" + window.location.search, rows));
  }
  const kase = document.getElementById("case");
  if (kase) {
    const id = kase.dataset.alertId;
    const part = document.getElementById("case-live");
    live(kase.dataset.live, (changed) => {
      if (changed === "*" || changed === id) refresh("/console/alerts/" + id + "/timeline", part);
    });
  }
});
