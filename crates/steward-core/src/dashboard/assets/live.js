// Live updates only: every action on these pages is a plain form POST.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var base = document.title;
  var es = new EventSource("/events" + location.search);
  es.addEventListener("call", function (e) {
    var feed = document.getElementById("feed");
    if (!feed) return;
    var t = document.createElement("template");
    t.innerHTML = e.data;
    var row = t.content.firstElementChild;
    if (!row) return;
    var old = document.getElementById(row.id);
    if (old) { row.open = old.open; old.replaceWith(row); } else { feed.insertBefore(row, feed.firstChild); }
    var empty = document.getElementById("empty");
    if (empty) empty.remove();
  });
  es.addEventListener("approvals", function (e) {
    var n = parseInt(e.data, 10) || 0;
    var badge = document.getElementById("badge");
    if (badge) badge.textContent = n ? String(n) : "";
    document.title = (n ? "(" + n + ") " : "") + base;
  });
  es.addEventListener("state", function (e) {
    var el = document.getElementById("agent-state");
    if (el && el.textContent !== e.data) { el.textContent = e.data; el.className = "state " + e.data; }
  });
})();
