// frp-rs web pages: live refresh. Polls the page's state (the same figures and tables the
// server rendered, as JSON) and redraws what changed, with textContent only. One request at a
// time; none while the tab is hidden.
'use strict';
(function () {
  document.documentElement.className = 'js';
  var body = document.body;
  var src = body.getAttribute('data-state');
  if (!src) { return; }
  var every = parseInt(body.getAttribute('data-interval'), 10) || 3000;
  var live = document.getElementById('live');
  var busy = false;
  var seen = {};

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function cell(c, first) {
    var td = el(first ? 'th' : 'td');
    if (first) { td.setAttribute('scope', 'row'); }
    if (c.chart) {
      var img = el('img');
      img.src = c.chart; img.alt = c.text; img.title = c.text; img.width = 196; img.height = 64;
      td.appendChild(img);
    } else if (c['class']) {
      td.appendChild(el('span', 'badge ' + c['class'], c.text));
    } else {
      td.textContent = c.text;
    }
    return td;
  }

  function rows(t) {
    var tbody = el('tbody');
    if (t.rows.length === 0) {
      var td = el('td', 'empty', t.empty);
      td.colSpan = t.head.length;
      var tr = el('tr'); tr.appendChild(td); tbody.appendChild(tr);
    }
    t.rows.forEach(function (r) {
      var tr = el('tr');
      r.forEach(function (c, i) { tr.appendChild(cell(c, i === 0)); });
      tbody.appendChild(tr);
    });
    return tbody;
  }

  function build(t) {
    var section = el('section', 'table');
    section.setAttribute('data-table', t.id);
    var table = el('table'); table.id = t.id;
    table.appendChild(el('caption', null, t.caption));
    var head = el('thead'); var tr = el('tr');
    t.head.forEach(function (h) { var th = el('th', null, h); th.scope = 'col'; tr.appendChild(th); });
    head.appendChild(tr); table.appendChild(head);
    table.appendChild(rows(t));
    section.appendChild(table);
    return section;
  }

  function apply(state) {
    state.figures.forEach(function (f) {
      var d = document.getElementById('fig-' + f.id);
      if (d && d.textContent !== f.value) { d.textContent = f.value; }
    });
    var wanted = {};
    state.tables.forEach(function (t) {
      wanted[t.id] = true;
      var json = JSON.stringify(t);
      if (seen[t.id] === json) { return; }
      seen[t.id] = json;
      var table = document.getElementById(t.id);
      if (!table) {
        var group = document.getElementById('group-' + t.group);
        if (group) { group.appendChild(build(t)); }
        return;
      }
      var old = table.querySelector('tbody');
      if (old) { table.replaceChild(rows(t), old); } else { table.appendChild(rows(t)); }
    });
    document.querySelectorAll('[data-table]').forEach(function (s) {
      if (!wanted[s.getAttribute('data-table')]) { s.parentNode.removeChild(s); }
    });
  }

  function tick() {
    if (busy || document.hidden) { return; }
    busy = true;
    // A request that hangs is given up, so the next one can go.
    var abort = window.AbortController ? new AbortController() : null;
    var limit = setTimeout(function () { if (abort) { abort.abort(); } }, 10000);
    // From the origin, not relative to the page: a page opened as http://user:pass@host/
    // would make a relative URL carry the credentials, which fetch refuses.
    fetch(window.location.origin + src, {
      cache: 'no-store', credentials: 'same-origin', signal: abort ? abort.signal : undefined
    })
      .then(function (r) {
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        return r.json();
      })
      .then(function (state) {
        apply(state);
        live.textContent = 'Live: updated ' + new Date().toLocaleTimeString();
      })
      .catch(function (e) {
        live.textContent = 'Live refresh failed (' + e.message + '); retrying.';
      })
      .then(function () { clearTimeout(limit); busy = false; });
  }

  setInterval(tick, every);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) { tick(); } });
}());
