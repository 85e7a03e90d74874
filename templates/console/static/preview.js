// A preview shows what will be sent; its publish button sends exactly
// that, not the form below it. Once the form is changed after the
// preview, the button is disabled and a note says to preview again, so a
// correction typed after pressing Preview is never taken as published.
(function () {
  "use strict";
  var section = document.querySelector("section.preview");
  var form = document.querySelector("form.incident, form.letter");
  if (!section || !form) { return; }
  var stale = false;
  function outdated() {
    if (stale) { return; }
    stale = true;
    section.querySelectorAll("form.publish button[type=submit]").forEach(function (b) { b.disabled = true; });
    var note = document.createElement("p");
    note.className = "warning";
    note.setAttribute("role", "alert");
    note.textContent = section.dataset.outdated;
    var publish = section.querySelector("form.publish");
    publish.insertBefore(note, publish.firstChild);
  }
  form.addEventListener("input", outdated);
  form.addEventListener("change", outdated);
})();
