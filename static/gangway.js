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
