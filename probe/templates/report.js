// Scorecards are <details>: open the one a link points at (and the details around a link's
// target), and expand or collapse them all.
// The page reads the same without this script; it makes no network request.
(function () {
  "use strict";
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var element = id ? document.getElementById(id) : null;
    var opened = false;
    // The target itself (a scorecard) and every closed <details> around it (a spec reference).
    for (var node = element; node; node = node.parentElement) {
      if (node.tagName === "DETAILS" && !node.open) {
        node.open = true;
        opened = true;
      }
    }
    if (opened) {
      element.scrollIntoView();
    }
  }
  window.addEventListener("hashchange", openTarget);
  // A link to the scorecard already in the address bar fires no hashchange: open it anyway.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest('a[href^="#"]');
    if (link && link.getAttribute("href") === window.location.hash) {
      openTarget();
    }
  });
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
