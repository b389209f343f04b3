// Scorecards are <details>: open the one a link points at, and expand or collapse them all.
// The page reads the same without this script; it makes no network request.
(function () {
  "use strict";
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var element = id ? document.getElementById(id) : null;
    if (element && element.tagName === "DETAILS" && !element.open) {
      element.open = true;
      element.scrollIntoView();
    }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  var controls = document.querySelector(".controls");
  if (!controls) {
    return;
  }
  controls.hidden = false;
  controls.addEventListener("click", function (event) {
    var wanted = event.target.getAttribute && event.target.getAttribute("data-details");
    if (!wanted) {
      return;
    }
    document.querySelectorAll("details.scorecard").forEach(function (details) {
      details.open = wanted === "open";
    });
  });
})();
