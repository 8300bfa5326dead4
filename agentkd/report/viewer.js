// The trajectory viewer of an agentkd report: filters over the row table, one page of rows in the DOM at a
// time, and a trajectory's steps parsed from its JSON block only when it is opened. No network, no library.
(function () {
  "use strict";
  var meta = JSON.parse(document.getElementById("rows-data").textContent);
  var C = {};
  meta.columns.forEach(function (name, i) { C[name] = i; });
  var rows = meta.rows, PAGE = meta.page, CHUNK = meta.chunk;
  var chunks = {};
  var filtered = [], page = 0, current = -1;
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) if (arguments[i]) parent.appendChild(arguments[i]);
    return parent;
  }
  function usd(v) {
    if (!v) return "$0";
    return v >= 1 ? "$" + v.toFixed(2) : "$" + v.toPrecision(2);
  }
  function show(value) {
    if (value === undefined || value === null) return "—";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  // filters ---------------------------------------------------------------------------------------------------
  function fillSelect(id, column, order) {
    var counts = {};
    rows.forEach(function (r) { var v = r[C[column]]; if (v !== null) counts[v] = (counts[v] || 0) + 1; });
    var values = order ? order.filter(function (v) { return counts[v]; }) : Object.keys(counts).sort();
    var select = $(id);
    values.forEach(function (v) {
      var option = el("option", null, v + " (" + counts[v] + ")");
      option.value = v;
      select.appendChild(option);
    });
    if (!values.length) select.disabled = true;
  }

  function applyFilters() {
    var source = $("f-source").value, success = $("f-success").value, status = $("f-status").value,
        kind = $("f-kind").value, deferred = $("f-deferred").value, text = $("f-text").value.trim().toLowerCase();
    filtered = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (source && r[C.source] !== source) continue;
      if (success && (r[C.success] ? "1" : "0") !== success) continue;
      if (status && r[C.status] !== status) continue;
      if (kind && r[C.kind] !== kind) continue;
      if (deferred && ((r[C.deferred] > 0) ? "1" : "0") !== deferred) continue;
      if (text && (r[C.task] + " " + r[C.prompt] + " " + r[C.policy]).toLowerCase().indexOf(text) < 0) continue;
      filtered.push(i);
    }
    page = 0;
    renderList();
  }

  // the list ----------------------------------------------------------------------------------------------------
  function renderList() {
    var pages = Math.max(1, Math.ceil(filtered.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    var body = document.querySelector("#rows tbody");
    var fragment = document.createDocumentFragment();
    filtered.slice(page * PAGE, page * PAGE + PAGE).forEach(function (i) {
      var r = rows[i];
      var tr = el("tr", "row" + (i === current ? " open" : ""));
      tr.dataset.index = i;
      tr.tabIndex = 0;
      add(tr, el("td", null, i + 1), el("td", null, r[C.source]), el("td", "task", r[C.task]),
          el("td", null, r[C.kind] === null ? "" : r[C.kind]),
          el("td", r[C.success] ? "ok" : "bad", (r[C.success] ? "✓" : "✗") +
             (r[C.score] === 0 || r[C.score] === 1 ? "" : " " + r[C.score])),
          el("td", r[C.status] === "finished" ? null : "warn", r[C.status]),
          el("td", null, r[C.steps] + " (" + r[C.teacher_steps] + "·" + r[C.student_steps] + ")"),
          el("td", r[C.deferred] ? "warn" : null, r[C.deferred] || ""),
          el("td", null, r[C.cost_usd] ? usd(r[C.cost_usd]) : r[C.tokens].toLocaleString() + " tok"));
      tr.querySelector(".task").title = r[C.prompt];
      fragment.appendChild(tr);
    });
    body.replaceChildren(fragment);
    var first = filtered.length ? page * PAGE + 1 : 0, last = Math.min(filtered.length, page * PAGE + PAGE);
    $("count").textContent = filtered.length.toLocaleString() + " of " + rows.length.toLocaleString() + " trajectories";
    $("page").textContent = "rows " + first + "–" + last + " of " + filtered.length.toLocaleString() +
      " (page " + (page + 1) + " of " + pages + ")";
    $("prev").disabled = page === 0;
    $("next").disabled = page >= pages - 1;
  }

  // one trajectory ------------------------------------------------------------------------------------------------
  function detailOf(i) {
    var n = Math.floor(i / CHUNK);
    if (!chunks[n]) chunks[n] = JSON.parse($("chunk-" + n).textContent);
    return chunks[n][i % CHUNK];
  }

  function usage(u) {
    if (!u) return "";
    var text = u.prompt + "+" + u.completion + " tokens";
    if (u.cost) text += " · " + usd(u.cost);
    return text;
  }

  function block(label, text, cls) {
    if (text === undefined || text === null || text === "") return null;
    var wrap = el("div");
    add(wrap, el("div", "label", label), el("pre", cls, text));
    return wrap;
  }

  function renderStep(s) {
    var box = el("div", "step role-" + s.role);
    var head = el("div", "head");
    add(head, el("span", "badge role-" + s.role, s.role), document.createTextNode("step " + (s.i + 1) + " "));
    if (s.deferred) {
      var why = (s.vote && s.vote.mode === "confidence")
        ? "deferred: the student was unsure (confidence " + show(s.vote.confidence) + " < " + show(s.vote.threshold) + ")"
        : "deferred: the student's samples disagreed";
      add(head, el("span", "badge deferred", why));
    }
    if (s.resampled) add(head, el("span", "badge", "resampled (a repeated reply)"));
    var parts = [s.model, usage(s.usage), "model " + s.latency + " s", "code " + s.exec + " s"];
    add(head, el("span", "meta", parts.filter(Boolean).join(" · ")));
    add(box, head);
    if (s.thought) add(box, el("div", "thought", s.thought));
    var calls = s.tool_calls ? s.tool_calls.map(function (c) { return c.name + "(" + c.arguments + ")"; }).join("\n")
      : null;
    add(box, block("code", s.code, "code"), block("tool calls", calls, "code"),
        block(s.tool_calls ? "reply" : "output (no code could be parsed)", s.output, null),
        block("parse error", s.parse_error, "err"),
        block(s.tool_calls ? "tool results" : "observation", s.observation, "obs"),
        block("execution error", s.execution_error, "err"));
    if (s.candidates) {
      var vote = s.vote || {};
      var details = el("details", "candidates");
      if (s.deferred) details.open = true;
      var summary = vote.mode === "confidence"
        ? "the student's candidate · confidence " + show(vote.confidence) + (vote.threshold !== undefined
          ? " against " + show(vote.threshold) : "") + ": " + (vote.accepted ? "accepted" : "rejected") +
          (vote.matches_teacher !== undefined ? ", " + (vote.matches_teacher ? "matches" : "misses") +
           " the teacher's result" : "")
        : s.candidates.length + " student candidates · vote (" + (vote.mode || "?") + "): " +
          (vote.accepted ? "accepted" : "rejected") + ", groups " + JSON.stringify(vote.group_sizes || []) +
          ", needed " + show(vote.needed) + (vote.unusable ? ", unusable " + vote.unusable : "");
      add(details, el("summary", null, summary));
      s.candidates.forEach(function (text, k) {
        var item = el("div", "candidate" + (k === vote.winner_index ? " winner" : ""));
        add(item, el("div", "label", "candidate " + (k + 1) + (k === vote.winner_index ? " (largest group)" : "")),
            el("pre", "code", text));
        add(details, item);
      });
      if (s.role_usage) {
        add(details, el("div", "label", Object.keys(s.role_usage).map(function (role) {
          return role + ": " + usage(s.role_usage[role]);
        }).join(" · ")));
      }
      add(box, details);
    }
    return box;
  }

  function open(i) {
    if (!(i >= 0 && i < rows.length)) return;
    current = i;
    var d = detailOf(i), r = rows[i];
    var panel = $("detail");
    var wrap = el("div", "trajectory");
    wrap.dataset.index = i;
    add(wrap, el("h3", null, "#" + (i + 1) + " · " + d.task.id + (d.sample ? " sample " + d.sample : "")));
    var badges = el("div");
    add(badges, el("span", "badge " + (d.success ? "ok" : "bad"), d.success ? "success" : "failure"),
        el("span", "badge", d.status), el("span", "badge", "score " + d.score), el("span", "badge", r[C.source]),
        d.task.kind ? el("span", "badge", d.task.kind) : null);
    add(wrap, badges, el("div", "label", "policy " + d.policy + " · " + usage(d.usage) + " · " + d.seconds + " s · " +
        (d.started || "")));
    add(wrap, block("task", d.task.prompt, null));
    if (d.error) add(wrap, block("error", d.error, "err"));
    d.steps.forEach(function (s) { add(wrap, renderStep(s)); });
    var final = el("div", "final");
    add(final, el("div", null, "final answer: " + show(d.final)), el("div", null, "expected: " + show(d.task.answer)),
        el("div", d.success ? "ok" : "bad", "grade: score " + d.score + ", " + (d.success ? "success" : "failure")));
    add(wrap, final);
    if (d.spec) add(wrap, block("policy spec", JSON.stringify(d.spec, null, 1), null));
    panel.replaceChildren(wrap);
    panel.scrollTop = 0;
    document.querySelectorAll("#rows tr.open").forEach(function (tr) { tr.classList.remove("open"); });
    var row = document.querySelector('#rows tr[data-index="' + i + '"]');
    if (row) row.classList.add("open");
    if (history.replaceState) history.replaceState(null, "", "#t" + (i + 1));
  }

  // wiring -------------------------------------------------------------------------------------------------------
  fillSelect("f-source", "source", meta.sources);
  fillSelect("f-status", "status");
  fillSelect("f-kind", "kind");
  ["f-source", "f-success", "f-status", "f-kind", "f-deferred"].forEach(function (id) {
    $(id).addEventListener("change", applyFilters);
  });
  var typing = null;
  $("f-text").addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(applyFilters, 150); });
  $("f-text").addEventListener("change", function () { clearTimeout(typing); applyFilters(); });
  $("prev").addEventListener("click", function () { page -= 1; renderList(); });
  $("next").addEventListener("click", function () { page += 1; renderList(); });
  var body = document.querySelector("#rows tbody");
  body.addEventListener("click", function (event) {
    var tr = event.target.closest("tr");
    if (tr) open(Number(tr.dataset.index));
  });
  body.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.dataset.index) open(Number(event.target.dataset.index));
  });
  applyFilters();
  var wanted = /^#t(\d+)$/.exec(location.hash);
  if (wanted) open(Number(wanted[1]) - 1);
  document.body.dataset.ready = "1";
  window.agentkdReportReadyMs = performance.now();
})();
