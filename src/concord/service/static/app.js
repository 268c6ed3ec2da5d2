// Concord dashboard: POST buttons and forms, swap the returned HTML in, poll live parts.
// Every POST carries X-Concord-UI, which a page on another site cannot send.
(function () {
  "use strict";
  var H = { "X-Concord-UI": "1" };
  function swap(el, html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    var n = t.content.firstElementChild;
    if (n && el.isConnected) el.replaceWith(n);
  }
  async function post(url, body, target) {
    var r = await fetch(url, { method: "POST", headers: H, body: body, credentials: "same-origin" });
    var text = await r.text();
    if (r.status === 401) { location.href = "/login"; return; }
    if (target && r.ok) swap(target, text);
    else if (!r.ok) alert(text);
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-post]");
    if (!b) return;
    e.preventDefault();
    b.disabled = true;
    if (b.classList.contains("sync")) b.textContent = "Syncing…";
    post(b.dataset.post, null, b.closest("[data-swap]"));
  });
  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (!f.dataset.post) return;
    e.preventDefault();
    var fd = new FormData(f);
    if (e.submitter && e.submitter.name) fd.set(e.submitter.name, e.submitter.value);
    post(f.dataset.post, fd, f.closest("[data-swap]"));
  });
  var busy = false;
  setInterval(async function () {
    if (busy) return;
    busy = true;
    try {
      for (var el of document.querySelectorAll("[data-poll]")) {
        var r = await fetch(el.dataset.poll, { credentials: "same-origin" });
        if (r.ok) swap(el, await r.text());
      }
    } catch (err) { /* offline for a moment: try again next tick */ }
    busy = false;
  }, 1000);
})();
