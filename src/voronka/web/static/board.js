// The board: drag a card to another column to move the deal (SortableJS), a lost column asks for the reason.
(function () {
  "use strict";
  var board = document.getElementById("board");
  if (!board) return;
  var flash = document.getElementById("flash");

  function say(text, bad) {
    flash.textContent = text;
    flash.className = "flash" + (bad ? " bad" : " good");
  }

  function reload() {
    return htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#board", swap: "innerHTML" });
  }

  function askReason() {
    var dialog = document.getElementById("lost-dialog");
    return new Promise(function (resolve) {
      dialog.returnValue = "";
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        if (dialog.returnValue === "ok") {
          resolve({ reason: document.getElementById("lost-reason").value, comment: document.getElementById("lost-comment").value });
        } else {
          resolve(null);
        }
      });
      dialog.showModal();
    });
  }

  function move(card, column) {
    var form = new FormData();
    form.append("csrf", board.dataset.csrf);
    form.append("stage", column.dataset.stage);
    form.append("version", card.dataset.version);
    var ready = Promise.resolve({});
    if (column.dataset.kind === "lost") ready = askReason();
    return ready.then(function (extra) {
      if (extra === null) { say(board.dataset.cancelled || "Cancelled.", false); return reload(); }
      if (extra.reason) form.append("reason", extra.reason);
      if (extra.comment) form.append("comment", extra.comment);
      return fetch("/deals/" + card.dataset.id + "/move", {
        method: "POST", body: form, headers: { "Accept": "application/json", "X-CSRF-Token": board.dataset.csrf },
        credentials: "same-origin",
      }).then(function (response) {
        return response.json().then(function (body) {
          if (response.ok) {
            say("✓ " + card.querySelector(".title").textContent, false);
          } else {
            say(body.error ? body.error.message : ("Error " + response.status), true);
          }
          return reload();
        });
      });
    });
  }

  function init() {
    board.querySelectorAll("ol.cards").forEach(function (list) {
      if (list._sortable) return;
      list._sortable = Sortable.create(list, {
        group: "board", animation: 120, draggable: "li.deal", filter: "li.more",
        onEnd: function (evt) {
          if (evt.from === evt.to) return;
          move(evt.item, evt.to.closest("section.column"));
        },
      });
    });
  }

  document.body.addEventListener("htmx:afterSwap", function (evt) { if (evt.detail.target === board) init(); });
  if (window.Sortable) init(); else window.addEventListener("load", init);
})();
