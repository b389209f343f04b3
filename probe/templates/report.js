// Draws the report's Plotly charts from the JSON embedded in #report-data. No network access.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var config = { displaylogo: false, responsive: true, showLink: false, showSendToCloud: false };
  var drawn = {};

  function draw(id) {
    var figure = data.figures[id];
    var element = document.getElementById(id);
    if (drawn[id] || !figure || !element || typeof Plotly === "undefined") {
      return;
    }
    drawn[id] = true;
    Plotly.newPlot(element, figure.data, figure.layout, config);
  }

  var ids = Object.keys(data.figures);
  var lazy = data.lazy && typeof IntersectionObserver !== "undefined";
  if (!lazy) {
    ids.forEach(draw);
    return;
  }
  var observer = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (entry.isIntersecting) {
        draw(entry.target.id);
        observer.unobserve(entry.target);
      }
    });
  }, { rootMargin: "400px" });
  ids.forEach(function (id) {
    var element = document.getElementById(id);
    if (element && id.indexOf("overview-") === 0) {
      draw(id);
    } else if (element) {
      observer.observe(element);
    }
  });
})();
