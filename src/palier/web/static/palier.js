// Palier pages: a form sent once. A second click while the page loads would redeem twice.
// A form that cannot be taken back asks first (data-confirm; "{points}" is the points typed in it, and
// data-confirm-one the question for a single point, where the words agree with it: "1 point", "2 points").
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.dataset.sent) {
    if (form instanceof HTMLFormElement) event.preventDefault();
    return;
  }
  let question = form.dataset.confirm;
  const typed = form.elements.namedItem("points");
  const points = Number(String(typed?.value || "0").replace(/\s/g, ""));
  // 0 or not a number: nothing to confirm, the page says what is wrong
  if (question && !(typed && (!points || Number.isNaN(points)))) {
    if (form.dataset.confirmOne && Math.abs(points) <= 1) question = form.dataset.confirmOne;
    const shown = Math.abs(points).toLocaleString(document.documentElement.lang || "fr");
    const signed = (points > 0 ? "+" : "\u2212") + shown;
    if (!window.confirm(question.replace("{points}", signed))) {
      event.preventDefault();
      return;
    }
  }
  form.dataset.sent = "1";
  for (const button of form.querySelectorAll("button[type=submit]")) {
    button.setAttribute("aria-disabled", "true");
  }
});

// Back to a page kept in the browser's cache: its forms may be sent again.
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  for (const form of document.querySelectorAll("form[data-sent]")) {
    delete form.dataset.sent;
    for (const button of form.querySelectorAll("button[aria-disabled]")) button.removeAttribute("aria-disabled");
  }
});

// A page sent back with an error: focus goes to the first field marked invalid, or else to the alert, so that
// keyboard and screen-reader users land on what to fix. A page that focuses a box on purpose (autofocus: the
// till's search, which a barcode scanner types into) keeps it when no field is at fault.
(() => {
  const invalid = document.querySelector("[aria-invalid='true']:not([disabled])");
  const alert = document.querySelector("[role='alert']");
  if (invalid) {
    invalid.focus();
  } else if (alert && !document.querySelector("[autofocus]")) {
    if (!alert.hasAttribute("tabindex")) alert.setAttribute("tabindex", "-1");
    alert.focus();
  }
})();

// A page answered to a posted search (posted to keep card and phone numbers out of URLs and logs): its history
// entry becomes the plain page, so that Back to it opens the page again rather than the browser's "Confirm
// Form Resubmission" dead end.
(() => {
  const url = document.querySelector("meta[name='palier-page-url']")?.content;
  if (url) history.replaceState(null, "", url);
})();

// A table wider than the screen (a phone) scrolls sideways in its box: the box then takes the keyboard's focus,
// so that arrow keys scroll it, and is named after its heading. A table that fits is no extra tab stop.
(() => {
  const boxes = document.querySelectorAll(".table-wrap");
  if (!boxes.length) return;
  for (const box of boxes) {
    const heading = box.closest("section")?.querySelector("h2, h1") || document.querySelector("h1");
    box.setAttribute("role", "region");
    if (heading) box.setAttribute("aria-label", heading.textContent.trim());
  }
  const fit = () => {
    for (const box of boxes) {
      if (box.scrollWidth > box.clientWidth + 1) box.tabIndex = 0;
      else box.removeAttribute("tabindex");
    }
  };
  fit();
  window.addEventListener("resize", fit);
})();

// "Older" under the member's history adds lines below without a new page, and the link it was on is replaced:
// the focus goes to the first line added, so a keyboard or screen-reader user reads on from there instead of
// being sent back to the top of the page.
document.addEventListener("htmx:beforeSwap", (event) => {
  const list = event.detail.target;
  if (list?.id === "history-lines") list.dataset.before = String(list.children.length);
});
document.addEventListener("htmx:afterSettle", () => {
  const list = document.getElementById("history-lines");
  if (!list || list.dataset.before === undefined) return;
  const first = list.children[Number(list.dataset.before)];
  delete list.dataset.before;
  if (first) {
    first.tabIndex = -1;
    first.focus();
  }
});
