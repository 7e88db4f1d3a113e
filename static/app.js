// The page without full reloads, when JavaScript is on.
//
// A form marked data-enhance is sent with fetch() and the <main> of the page
// that comes back replaces this one, so the server renders one set of
// templates for both paths; with JavaScript off the same forms post as usual.
// Ctrl+Enter (Cmd+Enter on a Mac) in a text area submits its form.
(function () {
  "use strict";

  // Resolve against the origin only: a page opened as http://user:pw@host/
  // would otherwise give URLs with credentials, which fetch() refuses.
  function endpoint(form) {
    return new URL(form.getAttribute("action"), window.location.origin).toString();
  }

  function setBusy(form, busy) {
    form.setAttribute("aria-busy", busy ? "true" : "false");
    form.querySelectorAll("button").forEach(function (button) { button.disabled = busy; });
  }

  // Put the new page's <main> in place and move focus where the person
  // should look next: the saved item, the message, or the heading.
  function showPage(html, url, anchorId) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.querySelector("main");
    var main = document.querySelector("main");
    if (!fresh || !main) { return false; }
    main.replaceWith(document.adoptNode(fresh));
    document.title = doc.title;
    if (url && url !== window.location.href.split("#")[0]) {
      window.history.pushState({ enhanced: true }, "", url);
    }
    var item = anchorId && fresh.querySelector("#" + CSS.escape(anchorId));
    var target = (item && (item.querySelector(".saved") || item.querySelector(".chosen"))) ||
      fresh.querySelector(".notice, [role=alert]") || fresh.querySelector("h1");
    if (target) {
      if (!target.hasAttribute("tabindex") && !/^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(target.tagName)) {
        target.setAttribute("tabindex", "-1");
      }
      target.focus();
    }
    return true;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-enhance]") || form.dataset.plain === "1" || !window.fetch) { return; }
    event.preventDefault();
    var submitter = event.submitter || null;
    var data = new FormData(form);
    if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
    var item = form.closest("[id]");
    setBusy(form, true);
    fetch(endpoint(form), {
      method: "POST", body: data, credentials: "same-origin", headers: { Accept: "text/html" }
    }).then(function (response) {
      return response.text().then(function (html) {
        if (!showPage(html, response.url, item && item.id)) { throw new Error("not a page"); }
      });
    }).catch(function () {
      // Whatever went wrong, the plain form post still works.
      setBusy(form, false);
      form.dataset.plain = "1";
      form.requestSubmit(submitter);
    });
  });

  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) &&
        field.matches && field.matches("textarea") && field.form) {
      event.preventDefault();
      field.form.requestSubmit();
    }
  });

  // On a narrow screen a chart scrolls sideways; start at its right end,
  // where the most recent days are.
  document.querySelectorAll(".chart-scroll").forEach(function (box) {
    box.scrollLeft = box.scrollWidth;
  });

  // Pages swapped in by fetch() are in the browser history; going back
  // loads the real page for that address.
  window.addEventListener("popstate", function () { window.location.reload(); });
}());
