// otel-llm-cost dashboard: sortable tables, refresh on demand and auto-refresh. No dependencies.
(function () {
  "use strict";
  function cellValue(cell, kind) {
    var span = cell.querySelector("[data-value]");
    if (kind === "num") {
      var raw = span ? span.getAttribute("data-value") : cell.textContent;
      if (raw === "" || raw === null) { return -Infinity; }  // unpriced sorts below every figure
      var n = parseFloat(String(raw).replace(/[$,%]/g, ""));
      return isNaN(n) ? -Infinity : n;
    }
    return cell.textContent.trim().toLowerCase();
  }
  function sortBy(table, index, kind, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var descending = th.getAttribute("aria-sort") !== "descending";
    rows.sort(function (a, b) {
      var x = cellValue(a.cells[index], kind), y = cellValue(b.cells[index], kind);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  function init() {
    document.querySelectorAll("table.data").forEach(function (table) {
      if (!table.tHead) { return; }
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
        th.addEventListener("click", function () { sortBy(table, index, th.getAttribute("data-sort"), th); });
      });
    });
    document.querySelectorAll("[data-action=refresh]").forEach(function (button) {
      button.addEventListener("click", function () { window.location.reload(); });
    });
    var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
    if (seconds > 0) { window.setTimeout(function () { window.location.reload(); }, seconds * 1000); }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
