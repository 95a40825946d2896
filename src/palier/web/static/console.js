/* The console's few behaviours: the dashboard's charts (Chart.js, vendored) and the YAML editor's
   line numbers and error highlighting. Pages work without it; it only adds to them. */
(function () {
  "use strict";

  function json(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function charts() {
    var data = json("kpi-data"), labels = json("kpi-labels");
    if (!data || !window.Chart) return;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 13;
    Chart.defaults.color = "#4b5563";
    // figures as the page writes them (13,79 on a French page, 13.79 on an English one), not as the browser would
    Chart.defaults.locale = document.documentElement.lang || "fr";
    var points = document.getElementById("points-chart");
    if (points) {
      var series = [
        { label: labels.issued, data: data.issued, backgroundColor: "#4338ca", borderRadius: 4 },
        { label: labels.redeemed, data: data.redeemed, backgroundColor: "#059669", borderRadius: 4 },
        { label: labels.expired, data: data.expired, backgroundColor: "#d97706", borderRadius: 4 }
      ];
      if (data.debited) {  // none with a channel chosen: points debited have no channel
        series.push({ label: labels.debited, data: data.debited, backgroundColor: "#b91c1c", borderRadius: 4 });
      }
      new Chart(points, {
        type: "bar",
        data: { labels: data.weeks, datasets: series },
        options: {
          maintainAspectRatio: false, animation: false,
          plugins: { legend: { position: "bottom" } },
          scales: { y: { beginAtZero: true, grid: { color: "#eef0f4" } }, x: { grid: { display: false } } }
        }
      });
    }
    var basket = document.getElementById("basket-chart");
    if (basket) {
      new Chart(basket, {
        type: "bar",
        data: {
          labels: [labels.members, labels.non_members],
          datasets: [{ label: labels.basket + " (" + data.currency + ")", data: data.basket,
                       backgroundColor: ["#4338ca", "#9ca3af"], borderRadius: 6 }]
        },
        options: {
          indexAxis: "y", maintainAspectRatio: false, animation: false,
          plugins: { legend: { display: false } },
          scales: { x: { beginAtZero: true, grid: { color: "#eef0f4" } }, y: { grid: { display: false } } }
        }
      });
    }
  }

  function editor() {
    var box = document.querySelector(".code-editor");
    if (!box) return;
    var area = box.querySelector("textarea"), gutter = box.querySelector(".gutter"), marks = box.querySelector(".line-marks");
    var bad = (box.dataset.badLines || "").split(",").filter(Boolean).map(Number);
    function sync() {
      var count = area.value.split("\n").length;
      area.rows = count + 1;
      if (gutter.children.length !== count) {
        var html = "", lines = "";
        for (var n = 1; n <= count; n++) {
          var cls = bad.indexOf(n) >= 0 ? ' class="bad"' : "";
          html += "<li id=\"line-" + n + "\"" + cls + ">" + n + "</li>";
          lines += "<div" + cls + "></div>";
        }
        gutter.innerHTML = html;
        marks.innerHTML = lines;
      }
    }
    area.addEventListener("input", sync);
    // Tab indents; Esc first lets the next Tab leave the box, so that a keyboard is never shut in (said under it)
    var released = false;
    area.addEventListener("focus", function () { released = false; });
    area.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        released = true;
        return;
      }
      if (released) {
        released = event.key === "Shift";  // Esc, Tab or Esc, Shift+Tab: the keys on their way out
        return;
      }
      if (event.key === "Tab" && !event.shiftKey && !event.ctrlKey && !event.altKey) {
        event.preventDefault();
        var start = area.selectionStart;
        area.setRangeText("  ", start, area.selectionEnd, "end");
        sync();
      }
    });
    sync();
    document.querySelectorAll(".line-ref").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var line = Number(link.dataset.line), lines = area.value.split("\n"), offset = 0;
        for (var i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
        area.focus();
        area.setSelectionRange(offset, offset + (lines[line - 1] || "").length);
        var target = document.getElementById("line-" + line);
        if (target) target.scrollIntoView({ block: "center" });
      });
    });
    if (bad.length) {
      var first = document.getElementById("line-" + bad[0]);
      if (first) first.scrollIntoView({ block: "center" });
    }
  }

  // The dashboard's filters apply as soon as a choice is made with the mouse (a period, both ends of a range, a
  // channel). From the keyboard, arrows go through a list's choices and digits fill a date part by part: the
  // choice waits for Enter, or for the focus to leave the field, instead of loading the page again at every key.
  // The field that applied it has the focus again on the new page.
  function filters() {
    var form = document.querySelector("form[data-apply-on-change]");
    if (!form) return;
    var again = sessionStorage.getItem("palier-filter");
    sessionStorage.removeItem("palier-filter");
    if (again && form.elements.namedItem(again) && !document.querySelector("[role='alert']")) {
      form.elements.namedItem(again).focus();
    }
    var keyed = null, waiting = null;
    function apply(field) {
      waiting = null;
      if (field.name === "weeks") {
        form.elements.namedItem("first").value = "";
        form.elements.namedItem("last").value = "";
      } else if ((field.name === "first" && !form.elements.namedItem("last").value) ||
                 (field.name === "last" && !form.elements.namedItem("first").value)) {
        return;  // one end of a range: the other is still to come
      }
      sessionStorage.setItem("palier-filter", field.name);
      form.requestSubmit();
    }
    form.addEventListener("keydown", function (event) {
      keyed = event.target;
      if (event.key === "Enter" && waiting === event.target) {
        event.preventDefault();
        apply(event.target);
      }
    });
    form.addEventListener("pointerdown", function () { keyed = null; });
    form.addEventListener("change", function (event) {
      if (keyed === event.target) waiting = event.target;
      else apply(event.target);
    });
    form.addEventListener("focusout", function (event) {
      if (waiting === event.target) apply(event.target);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { charts(); editor(); filters(); });
})();
