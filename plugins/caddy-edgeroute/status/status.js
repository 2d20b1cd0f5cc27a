// Refreshes the live part of the page in place: asks the same handler for
// ?format=fragment every data-refresh milliseconds and swaps it in.
(function () {
  "use strict";
  var body = document.body;
  var every = parseInt(body.getAttribute("data-refresh"), 10) || 1000;
  var live = document.getElementById("live");
  var conn = document.getElementById("conn");
  // Credentials typed into the address bar stay out of the request URL;
  // the browser sends the ones it already used for this page.
  var url = new URL(window.location.href);
  url.username = "";
  url.password = "";
  url.hash = "";
  url.search = "?format=fragment";
  var busy = false;
  function tick() {
    if (busy) return;
    busy = true;
    fetch(url.toString(), { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        conn.textContent = "live";
        conn.className = "ok";
      })
      .catch(function (e) {
        conn.textContent = "disconnected (" + e.message + ")";
        conn.className = "bad";
      })
      .then(function () { busy = false; });
  }
  setInterval(tick, every);
})();
