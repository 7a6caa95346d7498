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

// A running sync's counters follow it: <div data-progress-url="…" data-run-id="…"> is polled every
// 2 s while that run runs; each [data-progress=field] shows the run's field. When it ends (or
// another run took its place) polling stops and [data-progress-done] appears.
const progress = document.querySelector("[data-progress-url]");
if (progress) {
  const poll = async () => {
    let state;
    try {
      const response = await fetch(progress.dataset.progressUrl, { headers: { Accept: "application/json" } });
      // Signed out or gone: nothing more to follow.
      if (!response.ok) return;
      state = await response.json();
    } catch {
      setTimeout(poll, 10000);
      return;
    }
    if (state.running && state.run && String(state.run.id) === progress.dataset.runId) {
      for (const field of progress.querySelectorAll("[data-progress]")) {
        const value = state.run[field.dataset.progress];
        if (value !== undefined) field.textContent = value;
      }
      setTimeout(poll, 2000);
    } else {
      progress.classList.add("finished");
      progress.querySelector("[data-progress-done]")?.removeAttribute("hidden");
    }
  };
  setTimeout(poll, 2000);
}

// A page still waiting on something (<section data-reload-after="3">) looks again after that
// many seconds, so whoever waits need not reload it; it also offers a link to do so by hand.
const waiting = document.querySelector("[data-reload-after]");
if (waiting) {
  setTimeout(() => window.location.reload(), Number(waiting.dataset.reloadAfter) * 1000);
}
