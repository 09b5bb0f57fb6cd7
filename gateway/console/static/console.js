// The console's live updates: no library, no build step, no inline script (the CSP forbids it).
// The page names what to follow in data- attributes of <body>; on each server-sent `change` it
// fetches server-rendered fragments of the same page and swaps them in. At most one fetch runs
// at a time; changes arriving meanwhile are folded into one more fetch.
"use strict";

(function () {
  const body = document.body;
  const streamUrl = body.dataset.stream;
  if (!streamUrl || !window.EventSource) return;

  let running = false;
  let again = false;

  async function fetchJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } });
    if (response.status === 401) { window.location.reload(); return null; }  // signed out: the page asks to sign in
    if (!response.ok) return null;
    return response.json();
  }

  async function refreshList() {
    const data = await fetchJson(body.dataset.listFragment);
    if (data) document.getElementById("rows").innerHTML = data.rows;
  }

  async function refreshExecution() {
    const url = new URL(body.dataset.executionFragment, window.location.href);
    url.searchParams.set("after_seq", body.dataset.lastSeq || "0");
    const data = await fetchJson(url);
    if (!data) return;
    document.getElementById("header").innerHTML = data.header;
    document.getElementById("graph").innerHTML = data.graph;
    document.getElementById("tickets").innerHTML = data.tickets;
    if (body.dataset.liveEvents === "yes" && data.events.trim()) {
      document.getElementById("events").insertAdjacentHTML("afterbegin", data.events);
    }
    body.dataset.lastSeq = String(data.last_seq);
  }

  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    try {
      do {
        again = false;
        if (body.dataset.listFragment) await refreshList();
        if (body.dataset.executionFragment) await refreshExecution();
      } while (again);
    } catch (error) {
      console.warn("console: refresh failed", error);
    } finally {
      running = false;
    }
  }

  const indicators = document.querySelectorAll("[data-live-indicator]");
  function live(on) {
    indicators.forEach(function (element) { element.classList.toggle("off", !on); });
  }

  const source = new EventSource(streamUrl);
  // On every (re)connection, fetch once: a change applied after the page was rendered but before
  // this stream subscribed sends no event (pinned by
  // test_console_change_made_before_the_live_stream_connects_appears_once_it_connects).
  source.addEventListener("open", function () { live(true); refresh(); });
  source.addEventListener("error", function () { live(false); });
  source.addEventListener("change", refresh);
  source.addEventListener("resync", refresh);
  window.addEventListener("pagehide", function () { source.close(); });
})();
