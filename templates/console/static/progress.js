// Keeps the progress view of a broadcast current until it is done: every
// second it reads GET /api/v1/progress/{event} with the staff session and
// fills in the cells marked data-count="<channel>.<counter>".
(function () {
  "use strict";
  var root = document.getElementById("progress");
  if (!root) { return; }
  var url = "/api/v1/progress/" + encodeURIComponent(root.dataset.event);
  function set(key, value) {
    var cell = root.querySelector('[data-count="' + key + '"]');
    if (cell) { cell.textContent = String(value); }
  }
  function tick() {
    fetch(url, { credentials: "same-origin" }).then(function (res) {
      if (!res.ok) { throw new Error(res.status); }
      return res.json();
    }).then(function (p) {
      Object.keys(p.channels || {}).forEach(function (ch) {
        var c = p.channels[ch];
        ["planned", "sent", "failed", "skipped", "retrying", "waiting"].forEach(function (k) { set(ch + "." + k, c[k]); });
      });
      ["planned", "sent", "failed", "skipped", "retrying", "waiting"].forEach(function (k) { set("total." + k, p.total[k]); });
      var state = document.getElementById("progress-state");
      if (p.done) {
        state.textContent = root.dataset.done;
        if (p.total.failed > 0) { location.reload(); }
        return;
      }
      state.textContent = root.dataset.running;
      setTimeout(tick, 1000);
    }).catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 500);
})();
