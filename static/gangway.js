// Gangway: the little the pages need from script; every page also works without it.
// Copy buttons: <button data-copy="#id-of-element"> copies that element's text or value.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = "value" in source ? source.value : source.textContent.trim();
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    if (source.select) { source.select(); document.execCommand("copy"); }
  }
  const label = button.textContent;
  button.textContent = "Copied";
  button.classList.add("copied");
  setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 1600);
});

// Confirm destructive actions: <form data-confirm="Revoke this invitation?">.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Buttons that start long work show progress and cannot be pressed twice.
document.addEventListener("submit", (event) => {
  if (event.defaultPrevented) return;
  const button = event.target.querySelector("button[data-busy]");
  if (button) {
    button.disabled = true;
    button.textContent = button.dataset.busy;
    button.classList.add("busy");
  }
});

// A page that comes back with errors marks its summary <div data-focus tabindex="-1">: put it in
// view and in focus, so the reader lands on what went wrong instead of the top of the page.
document.querySelector("[data-focus]")?.focus();

// An error summary's links move focus to the field they name (following the link only scrolls).
document.addEventListener("click", (event) => {
  const link = event.target.closest(".error-summary a[href^='#']");
  const field = link && document.getElementById(link.hash.slice(1));
  if (!field) return;
  event.preventDefault();
  field.focus({ preventScroll: true });
  (field.labels?.[0] ?? field).scrollIntoView({ block: "start" });
});

// The schedule form shows only the inputs of the kind chosen (without script, all of them show).
for (const form of document.querySelectorAll("[data-schedule-form]")) {
  const select = form.querySelector("[data-schedule-kind-select]");
  const show = () => {
    for (const part of form.querySelectorAll("[data-schedule-kind]")) {
      part.hidden = part.dataset.scheduleKind !== select.value;
    }
  };
  select.addEventListener("change", show);
  show();
}

// A tenant's sync follows itself without reloads. <div id="sync-state" data-sync-phase="queued|
// running|idle" data-progress-url="…" data-run-id="…"> polls the progress JSON every 2 s while a
// sync is queued or running: the running run's counters ([data-progress=field]) change in place;
// when the phase or the run changes, the page is fetched again and each [data-live] element is
// replaced by its fresh copy (badges, error and next step, recent runs).
const syncState = () => document.getElementById("sync-state");
if (syncState()) {
  const refresh = async () => {
    const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return false;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const ids = (doc) => [...doc.querySelectorAll("[data-live]")].map((e) => e.id).sort().join(" ");
    // Something appeared or went (e.g. "Consent needed again"): the whole page, then.
    if (ids(fresh) !== ids(document)) {
      window.location.reload();
      return false;
    }
    for (const part of document.querySelectorAll("[data-live]")) {
      part.replaceWith(document.importNode(fresh.getElementById(part.id), true));
    }
    document.dispatchEvent(new Event("gangway:updated"));
    return true;
  };
  const poll = async () => {
    const element = syncState();
    if (!element || element.dataset.syncPhase === "idle") return;
    let state;
    try {
      const response = await fetch(element.dataset.progressUrl, { headers: { Accept: "application/json" } });
      // Signed out or gone: nothing more to follow.
      if (!response.ok) return;
      state = await response.json();
    } catch {
      setTimeout(poll, 10000);
      return;
    }
    const sameRun = state.phase === "running" && state.run && String(state.run.id) === element.dataset.runId;
    if (state.phase === element.dataset.syncPhase && (state.phase !== "running" || sameRun)) {
      for (const field of element.querySelectorAll("[data-progress]")) {
        const value = state.run?.[field.dataset.progress];
        if (value === undefined || value === null) continue;
        if (field.tagName === "PROGRESS") field.value = value;
        else field.textContent = value;
      }
    } else if (!(await refresh())) {
      return;
    }
    setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);
}

// A page still waiting on something (<section data-reload-after="3">) looks again after that
// many seconds, so whoever waits need not reload it; it also offers a link to do so by hand.
const waiting = document.querySelector("[data-reload-after]");
if (waiting) {
  setTimeout(() => window.location.reload(), Number(waiting.dataset.reloadAfter) * 1000);
}

// Times: the server writes UTC and puts the instant in <time datetime>. Here they read in the
// viewer's own time zone, UTC kept in the tooltip. <time data-absolute> shows the time itself;
// others show "in 2 hours" and get the local time in their tooltip.
const localTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
});
const localizeTimes = () => {
  for (const time of document.querySelectorAll("time[datetime]:not([data-local])")) {
    const at = new Date(time.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    const local = localTime.format(at);
    if ("absolute" in time.dataset) {
      const utc = time.textContent.trim();
      time.title = time.title ? `${utc} · ${time.title}` : utc;
      time.textContent = local;
    } else {
      time.title = time.title ? `${local} · ${time.title}` : local;
    }
    time.dataset.local = "";
  }
};
localizeTimes();
document.addEventListener("gangway:updated", localizeTimes);

// Banners can be dismissed for this browser session (they come back after signing in again,
// or when what they say changes). Without script the button stays hidden.
for (const banner of document.querySelectorAll(".banner")) {
  const key = `gangway:dismissed:${banner.querySelector("p").textContent.trim()}`;
  if (sessionStorage.getItem(key)) {
    banner.hidden = true;
    continue;
  }
  const button = banner.querySelector("[data-dismiss]");
  button.hidden = false;
  button.addEventListener("click", () => {
    sessionStorage.setItem(key, "1");
    banner.hidden = true;
  });
}
