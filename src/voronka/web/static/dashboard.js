// Draw the dashboard's Plotly figures (their JSON is in data-figure) with the bundled plotly.min.js.
(function () {
  "use strict";
  function draw() {
    document.querySelectorAll(".chart[data-figure]").forEach(function (el) {
      var fig = JSON.parse(el.dataset.figure);
      Plotly.newPlot(el, fig.data, fig.layout, { displaylogo: false, responsive: true });
    });
  }
  if (window.Plotly) draw(); else window.addEventListener("load", draw);
})();
