// The batch page with progress: the server reads the file (/batch/texts),
// then the texts go to /predict in chunks while a progress bar moves, and
// the answers become a CSV to download. Without JavaScript the form posts
// the file and the server sends the CSV back in one go.
(function () {
  "use strict";
  var form = document.querySelector("form.batch");
  var messages = document.getElementById("batch-messages");
  if (!form || !messages || !window.fetch || !window.Blob) { return; }
  var text = messages.dataset;
  var status = document.getElementById("batch-status");
  var box = document.getElementById("batch-progress");
  var bar = document.getElementById("progress");
  var barText = document.getElementById("progress-text");
  var done = document.getElementById("batch-done");
  var download = document.getElementById("batch-download");
  var link = document.getElementById("download-link");
  var COLUMNS = ["text", "label", "score", "p_negative", "p_neutral", "p_positive"];

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return String(values[key]); });
  }

  function url(path) { return new URL(path, window.location.origin).toString(); }

  function showError(message) {
    status.textContent = "";
    var p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = message;
    status.appendChild(p);
  }

  function csvCell(value) {
    var s = String(value);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function csvRow(p) {
    var probs = p.probabilities;
    return [p.text, p.label, p.score.toFixed(4), probs.negative.toFixed(4),
      probs.neutral.toFixed(4), probs.positive.toFixed(4)].map(csvCell).join(",");
  }

  // JSON from the server, or an Error carrying its readable message.
  function send(path, options) {
    options.credentials = "same-origin";
    options.headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    return fetch(url(path), options).catch(function () {
      throw new Error(text.network);
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) { throw new Error(body.error || response.status + " " + response.statusText); }
        return body;
      });
    });
  }

  function labelInChunks(texts, size) {
    var lines = [COLUMNS.join(",")];
    var index = 0;
    function progress() {
      bar.max = texts.length;
      bar.value = index;
      barText.textContent = fill(text.progress, { done: index, total: texts.length });
    }
    function next() {
      if (index >= texts.length) { return Promise.resolve(lines); }
      var chunk = texts.slice(index, index + size);
      return send(form.dataset.predictUrl, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ texts: chunk })
      }).then(function (body) {
        body.predictions.forEach(function (p) { lines.push(csvRow(p)); });
        index += chunk.length;
        progress();
        return next();
      });
    }
    progress();
    return next();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = form.elements.file.files[0];
    var button = form.querySelector("button");
    button.disabled = true;
    done.hidden = true;
    download.hidden = true;
    status.textContent = text.reading;
    box.hidden = true;
    var labelling = false;
    send(form.dataset.textsUrl, { method: "POST", body: new FormData(form) }).then(function (body) {
      labelling = true;
      status.textContent = "";
      box.hidden = false;
      return labelInChunks(body.texts, body.chunk).then(function (lines) {
        if (link.href.indexOf("blob:") === 0) { URL.revokeObjectURL(link.href); }
        var blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
        link.href = URL.createObjectURL(blob);
        link.download = (file.name.replace(/\.[^.]*$/, "").replace(/[^\w-]/g, "") || "texts") + "-sentiment.csv";
        done.textContent = fill(text.done, { total: body.texts.length });
        done.hidden = false;
        download.hidden = false;
        done.focus();
      });
    }).catch(function (error) {
      // A bad file is the file's message; a failure halfway says so.
      showError(labelling ? fill(text.failed, { reason: error.message }) : error.message);
    }).then(function () {
      button.disabled = false;
    });
  });
}());
