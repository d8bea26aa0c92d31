// Plugboard console: what the server-rendered pages need a script for. Actions call the JSON API with the session
// cookie (same origin); form rules are read from the page (rendered from the manifest) and checked by one generic
// function; the OAuth popup reports back with postMessage. No inline script, no eval: the page's CSP forbids both.
(function () {
  'use strict';

  var workspaceId = document.body.getAttribute('data-workspace-id') || '';
  var enc = encodeURIComponent;

  // ---------- the JSON API ----------

  function ApiFailure(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  function plainMessage(status, data) {
    var text = data && typeof data.error === 'string' ? data.error : '';
    if (status === 401) return 'Your session has ended. Sign in again, then retry.';
    if (status === 403 && data && data.code === 'csrf_rejected') {
      return 'This request was refused because it did not come from this Plugboard page. Reload the page and retry.';
    }
    if (status === 403) return text || 'Your role in this workspace does not allow this. Ask an admin of the workspace.';
    if (status >= 500) {
      return 'Something went wrong on the server. Try again in a moment; if it keeps happening, the server\u2019s log says why.';
    }
    return text || 'The request failed (' + status + ').';
  }

  function api(method, path, body) {
    var init = { method: method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(
      function (res) {
        return res.text().then(function (text) {
          var data = null;
          if (text) {
            try { data = JSON.parse(text); } catch (e) { data = null; }
          }
          if (!res.ok) throw new ApiFailure(res.status, data && data.code, plainMessage(res.status, data));
          return data;
        });
      },
      function () {
        throw new ApiFailure(0, 'network', 'Plugboard could not be reached. Check your connection and try again.');
      }
    );
  }

  // ---------- announcements ----------

  function outcome(root) {
    return {
      status: root.querySelector('[data-outcome-status]'),
      alert: root.querySelector('[data-outcome-alert]')
    };
  }

  function say(out, text, link) {
    out.alert.textContent = '';
    out.status.textContent = text;
    if (link) {
      var a = document.createElement('a');
      a.href = link.href;
      a.textContent = link.text;
      out.status.appendChild(document.createTextNode(' '));
      out.status.appendChild(a);
    }
  }

  function fail(out, text, link) {
    out.status.textContent = '';
    out.alert.textContent = text;
    if (link) {
      var a = document.createElement('a');
      a.href = link.href;
      a.textContent = link.text;
      out.alert.appendChild(document.createTextNode(' '));
      out.alert.appendChild(a);
    }
  }

  function capitalise(s) {
    return s ? s.charAt(0).toUpperCase() + s.slice(1) : s;
  }

  // ---------- field rules (one generic check for every manifest) ----------

  var patterns = {};

  // A manifest's `validation.pattern` is a Rust regex, matched as a search (JSON Schema semantics). JavaScript reads
  // most of them the same way; leading inline flags, `(?P<name>`, `\A` and `\z` are translated. A pattern JavaScript
  // cannot compile (in its `u` mode) is not checked here (the server still checks it and its answer is shown beside the field).
  function compilePattern(source) {
    if (Object.prototype.hasOwnProperty.call(patterns, source)) return patterns[source];
    var s = source;
    var flags = '';
    var lead = /^\(\?([ims]+)\)/.exec(s);
    if (lead) {
      flags = lead[1];
      s = s.slice(lead[0].length);
    }
    s = s.replace(/\(\?P</g, '(?<')
      .replace(/(^|[^\\])((?:\\\\)*)\\A/g, '$1$2^')
      .replace(/(^|[^\\])((?:\\\\)*)\\z/g, '$1$2$');
    // Only the `u` mode: without it JavaScript reads some Rust syntax (`[[:digit:]]`, `\p{L}`) as something else and
    // would refuse values the server accepts.
    var re = null;
    try { re = new RegExp(s, flags + 'u'); } catch (e) { re = null; }
    patterns[source] = re;
    return re;
  }

  // Sets the control's custom validity from its data- rules (lengths in characters, as the server counts them;
  // the pattern as a search). `required`, `min` and `max` are the browser's own checks.
  function check(el) {
    var v = el.value;
    var message = '';
    if (v !== '' && el.type !== 'checkbox') {
      var chars = Array.from(v).length;
      var min = el.getAttribute('data-min-length');
      var max = el.getAttribute('data-max-length');
      var pattern = el.getAttribute('data-pattern');
      if (min && chars < Number(min)) {
        message = 'Must be at least ' + min + ' characters long.';
      } else if (max && chars > Number(max)) {
        message = 'Must be at most ' + max + ' characters long.';
      } else if (pattern) {
        var re = compilePattern(pattern);
        if (re && !re.test(v)) message = 'Does not match the pattern ' + pattern + '.';
      }
    }
    if (el.setCustomValidity) el.setCustomValidity(message);
    return message;
  }

  function errorSlot(el) {
    return document.getElementById(el.id + '-error');
  }

  function showError(el, text) {
    var slot = errorSlot(el);
    if (slot) slot.textContent = text;
    if (text) el.setAttribute('aria-invalid', 'true');
    else el.removeAttribute('aria-invalid');
  }

  function controlsOf(form) {
    return Array.prototype.slice.call(form.querySelectorAll('input, select, textarea'));
  }

  function wireValidation(form) {
    controlsOf(form).forEach(function (el) {
      check(el);
      el.addEventListener('invalid', function () {
        showError(el, el.validationMessage);
      });
      el.addEventListener('input', function () {
        check(el);
        if (el.getAttribute('aria-invalid') === 'true') showError(el, el.validity.valid ? '' : el.validationMessage);
      });
      el.addEventListener('change', function () {
        check(el);
        showError(el, el.validity.valid ? '' : el.validationMessage);
      });
    });
  }

  function clearErrors(form) {
    controlsOf(form).forEach(function (el) { showError(el, ''); });
  }

  // The server's 400 names the field (`field \`token\`: …`, `\`name\` …`): show it beside that field.
  function showServerError(form, err, out) {
    var m = /^field `([^`]*)`: ([\s\S]*)$/.exec(err.message) || /^`(name|crew_id|email|role|expires_in_days)` ([\s\S]*)$/.exec(err.message);
    if (err.status === 400 && m) {
      var key = m[1];
      var slot = form.querySelector('[data-error-for="' + CSS.escape(key) + '"]');
      if (slot) {
        var control = document.getElementById(slot.id.replace(/-error$/, ''));
        var label = control && control.labels && control.labels[0] ? control.labels[0].textContent.replace(/\*$/, '') : key;
        if (control) {
          showError(control, capitalise(m[2]));
          control.focus();
        }
        fail(out, label.trim() + ': ' + m[2]);
        return;
      }
    }
    fail(out, err.message);
  }

  function fieldValues(form, keepEmpty) {
    var out = {};
    var count = 0;
    form.querySelectorAll('[data-field-key]').forEach(function (el) {
      var key = el.getAttribute('data-field-key');
      if (el.type === 'checkbox') {
        out[key] = el.checked ? 'true' : 'false';
        count++;
      } else if (el.value !== '' || keepEmpty) {
        out[key] = el.value;
        count++;
      }
    });
    return count ? out : null;
  }

  function busy(button, on) {
    if (!button) return;
    if (on) button.setAttribute('aria-busy', 'true');
    else button.removeAttribute('aria-busy');
  }

  // ---------- OAuth in a popup ----------

  function openPopup() {
    var w = 560;
    var h = 700;
    var left = Math.max(0, window.screenX + (window.outerWidth - w) / 2);
    var top = Math.max(0, window.screenY + (window.outerHeight - h) / 2);
    return window.open('about:blank', 'plugboard-oauth',
      'popup,width=' + w + ',height=' + h + ',left=' + Math.round(left) + ',top=' + Math.round(top));
  }

  function integrationLink(id, text) {
    return { href: '/w/' + enc(workspaceId) + '/integrations/' + enc(id), text: text || 'Open the integration' };
  }

  function showFinalStatus(out, id, name) {
    return api('GET', '/api/v1/integrations/' + enc(id)).then(function (i) {
      document.querySelectorAll('[data-status-word]').forEach(function (el) {
        el.textContent = i.status;
        el.className = 'status ' + i.status;
      });
      if (i.status === 'active') {
        say(out, '\u201c' + name + '\u201d is connected: active.', integrationLink(id));
      } else if (i.status === 'pending_oauth') {
        fail(out, 'The sign-in window was closed before access was allowed, so \u201c' + name +
          '\u201d is still pending_oauth. Use Connect on its page to try again.', integrationLink(id));
      } else {
        fail(out, '\u201c' + name + '\u201d is in error: ' + (i.status_reason || 'access was not granted') +
          '. Reconnect it from its page.', integrationLink(id));
      }
      return i.status;
    });
  }

  // Sends the popup to the authorization URL and waits for the callback page's message (or the popup closing).
  function runOAuth(popup, url, id, name, out) {
    if (!popup || popup.closed) {
      popup = window.open(url, 'plugboard-oauth', 'popup,width=560,height=700');
    } else {
      popup.location.href = url;
    }
    if (!popup) {
      fail(out, 'Your browser blocked the sign-in window. Allow pop-ups for this site, then use Connect on the integration\u2019s page.');
      return Promise.resolve();
    }
    say(out, 'Waiting for you to allow access in the sign-in window\u2026');
    return new Promise(function (resolve) {
      var done = false;
      function finish() {
        if (done) return;
        done = true;
        window.removeEventListener('message', onMessage);
        window.clearInterval(timer);
        showFinalStatus(out, id, name).then(resolve, function (e) { fail(out, e.message); resolve(); });
      }
      function onMessage(event) {
        if (event.origin !== window.location.origin) return;
        var d = event.data;
        if (!d || d.type !== 'plugboard:oauth') return;
        if (d.integration_id && d.integration_id !== id) return;
        finish();
      }
      window.addEventListener('message', onMessage);
      var timer = window.setInterval(function () {
        if (popup.closed) window.setTimeout(finish, 300);
      }, 500);
    });
  }

  // ---------- the connector page: Verify, Install / Connect ----------

  function wireConnectorForm(form) {
    var out = outcome(form);
    var connectorId = form.getAttribute('data-connector-id');
    var connectorName = form.getAttribute('data-connector-name');
    var mode = form.getAttribute('data-auth-mode');
    var submit = form.querySelector('button[type=submit]');
    var verify = form.querySelector('[data-verify]');
    var running = false;
    wireValidation(form);

    if (verify) {
      verify.addEventListener('click', function () {
        if (running) return;
        clearErrors(form);
        controlsOf(form).forEach(check);
        if (!form.reportValidity()) return;
        running = true;
        busy(verify, true);
        say(out, 'Checking with the provider\u2026');
        var body = {};
        var fields = fieldValues(form, false);
        if (fields) body.fields = fields;
        api('POST', '/api/v1/connectors/' + enc(connectorId) + '/verify?workspace_id=' + enc(workspaceId), body)
          .then(function (r) {
            if (r.ok) say(out, r.message ? 'ok: ' + r.message : 'ok: the provider accepted these values.');
            else fail(out, 'The provider refused these values: ' + (r.message || 'no reason given') + '.');
          }, function (e) { showServerError(form, e, out); })
          .then(function () { running = false; busy(verify, false); });
      });
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      if (running) return;
      clearErrors(form);
      var oauth = mode === 'byo_oauth' || mode === 'mcp_oauth';
      // Opened now, in the click, so no pop-up blocker stops it; sent to the provider once the URL is known.
      var popup = oauth ? openPopup() : null;
      running = true;
      busy(submit, true);
      say(out, mode === 'mcp_oauth' ? 'Connecting\u2026' : 'Installing\u2026');
      var body = {};
      var fields = fieldValues(form, false);
      if (fields) body.fields = fields;
      var name = form.querySelector('#install-name').value.trim();
      if (name) body.name = name;
      var crew = form.querySelector('#install-scope').value;
      if (crew) body.crew_id = crew;
      var shown = name || connectorName;
      api('POST', '/api/v1/connectors/' + enc(connectorId) + '/install?workspace_id=' + enc(workspaceId), body)
        .then(function (r) {
          if (r.next_step === 'oauth') return runOAuth(popup, r.oauth_url, r.integration_id, shown, out);
          if (r.next_step === 'mcp_oauth') {
            return api('POST', '/api/v1/integrations/' + enc(r.integration_id) + '/oauth/start')
              .then(function (s) { return runOAuth(popup, s.oauth_url, r.integration_id, shown, out); }, function (e) {
                if (popup) popup.close();
                fail(out, '\u201c' + shown + '\u201d was added but could not start its sign-in: ' + e.message);
              });
          }
          if (popup) popup.close();
          say(out, 'Installed \u201c' + shown + '\u201d: active.', integrationLink(r.integration_id));
        }, function (e) {
          if (popup) popup.close();
          showServerError(form, e, out);
        })
        .then(function () { running = false; busy(submit, false); });
    });
  }

  // ---------- an integration: Save, Connect / Reconnect, Delete ----------

  function wireIntegrationForm(form) {
    var out = outcome(form);
    var id = form.getAttribute('data-integration-id');
    var nameInput = form.querySelector('#integration-name');
    var enabled = form.querySelector('#integration-enabled');
    var submit = form.querySelector('button[type=submit]');
    var running = false;
    wireValidation(form);
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      if (running) return;
      clearErrors(form);
      var body = {};
      var name = nameInput.value.trim();
      if (name !== form.getAttribute('data-integration-name')) body.name = name;
      if (enabled.checked !== enabled.defaultChecked) body.enabled = enabled.checked;
      var fields = fieldValues(form, false);
      if (fields) body.fields = fields;
      if (!Object.keys(body).length) {
        say(out, 'Nothing to save: nothing was changed.');
        return;
      }
      running = true;
      busy(submit, true);
      api('PATCH', '/api/v1/integrations/' + enc(id), body)
        .then(function (i) {
          form.setAttribute('data-integration-name', i.name);
          nameInput.value = i.name;
          enabled.defaultChecked = i.enabled;
          form.querySelectorAll('[data-field-key]').forEach(function (el) { el.value = ''; });
          document.querySelectorAll('[data-name-text]').forEach(function (h) { h.textContent = i.name; });
          var what = [];
          if (body.name !== undefined) what.push('renamed');
          if (body.enabled !== undefined) what.push(i.enabled ? 'enabled' : 'disabled');
          if (body.fields) what.push('credentials replaced');
          say(out, 'Saved \u201c' + i.name + '\u201d: ' + what.join(', ') + '.');
        }, function (e) { showServerError(form, e, out); })
        .then(function () { running = false; busy(submit, false); });
    });
  }

  function wireOAuthStart(root) {
    var out = outcome(root);
    var id = root.getAttribute('data-integration-id');
    var name = root.getAttribute('data-integration-name');
    var button = root.querySelector('button');
    var running = false;
    button.addEventListener('click', function () {
      if (running) return;
      running = true;
      busy(button, true);
      var popup = openPopup();
      say(out, 'Starting the sign-in\u2026');
      api('POST', '/api/v1/integrations/' + enc(id) + '/oauth/start')
        .then(function (s) { return runOAuth(popup, s.oauth_url, id, name, out); }, function (e) {
          if (popup) popup.close();
          fail(out, e.message);
        })
        .then(function () { running = false; busy(button, false); });
    });
  }

  function wireDelete(root) {
    var out = outcome(root);
    var id = root.getAttribute('data-integration-id');
    var name = root.getAttribute('data-integration-name');
    var button = root.querySelector('button');
    button.addEventListener('click', function () {
      var sure = window.confirm('Delete \u201c' + name + '\u201d? Its stored credentials are destroyed and agents using it stop working.');
      if (!sure) {
        say(out, 'Not deleted.');
        return;
      }
      busy(button, true);
      api('DELETE', '/api/v1/integrations/' + enc(id))
        .then(function () {
          say(out, 'Deleted \u201c' + name + '\u201d.');
          window.location.assign(root.getAttribute('data-after'));
        }, function (e) { fail(out, e.message); busy(button, false); });
    });
  }

  // ---------- the catalog: narrowing as the person types ----------

  function wireCatalogFilter(form) {
    var input = form.querySelector('input[type=search]');
    var select = form.querySelector('select');
    var items = Array.prototype.slice.call(document.querySelectorAll('[data-catalog-cards] > li'));
    var count = document.querySelector('[data-catalog-count]');
    var empty = document.querySelector('[data-catalog-empty]');
    var total = count ? count.getAttribute('data-total') : String(items.length);
    var pending = null;
    // The same fields as the server's filter: id, name, description and category.
    function searchText(li) {
      if (!li.searchText) {
        var name = li.querySelector('[data-name]');
        var desc = li.querySelector('[data-desc]');
        li.searchText = [li.getAttribute('data-id'), name ? name.textContent : '', desc ? desc.textContent : '',
          li.getAttribute('data-category')].join('\n').toLowerCase();
      }
      return li.searchText;
    }
    function apply() {
      var q = input.value.trim().toLowerCase();
      var category = select.value;
      var shown = 0;
      items.forEach(function (li) {
        var ok = (!category || li.getAttribute('data-category') === category) &&
          (!q || searchText(li).indexOf(q) !== -1);
        li.hidden = !ok;
        if (ok) shown++;
      });
      if (empty) empty.hidden = shown !== 0;
      window.clearTimeout(pending);
      // Announced once the person pauses, not on every key.
      pending = window.setTimeout(function () {
        if (count) count.textContent = (q || category) ? shown + ' of ' + total + ' connectors' : total + ' connectors';
      }, 250);
      var params = new URLSearchParams();
      if (q) params.set('q', input.value.trim());
      if (category) params.set('category', category);
      var search = params.toString();
      window.history.replaceState(null, '', window.location.pathname + (search ? '?' + search : ''));
    }
    input.addEventListener('input', apply);
    select.addEventListener('change', apply);
  }

  // ---------- a first workspace ----------

  function wireCreateWorkspace(form) {
    var out = outcome(form.parentNode);
    wireValidation(form);
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      clearErrors(form);
      var name = form.querySelector('#workspace-name').value.trim();
      api('POST', '/api/v1/workspaces', { name: name })
        .then(function (w) {
          say(out, 'Created \u201c' + w.name + '\u201d.');
          window.location.assign('/w/' + enc(w.id) + '/catalog');
        }, function (e) { showServerError(form, e, out); });
    });
  }

  // ---------- copying a token shown once ----------

  function wireCopy(button) {
    button.addEventListener('click', function () {
      var target = document.getElementById(button.getAttribute('data-copy'));
      var out = outcome(button.closest('[data-copy-root]'));
      if (!target || !navigator.clipboard) return;
      navigator.clipboard.writeText(target.textContent).then(function () {
        say(out, 'Copied to the clipboard.');
      }, function () { fail(out, 'Copying failed: select the text and copy it yourself.'); });
    });
  }

  // ---------- small forms that call the API, then reload the page (members, crews, tokens) ----------

  var FLASH = 'plugboard:flash';

  function pageOutcome() {
    var root = document.querySelector('[data-page-outcome]');
    return root ? outcome(root) : null;
  }

  // A message shown after the reload (the page is rendered again by the server with the change in it).
  function flashAndReload(text) {
    try { window.sessionStorage.setItem(FLASH, text); } catch (e) { /* private mode: no message after reload */ }
    window.location.reload();
  }

  function showFlash() {
    var text = null;
    try {
      text = window.sessionStorage.getItem(FLASH);
      window.sessionStorage.removeItem(FLASH);
    } catch (e) { text = null; }
    var out = pageOutcome();
    if (text && out) say(out, text);
  }

  function jsonOf(form) {
    var body = {};
    var count = 0;
    form.querySelectorAll('[data-json]').forEach(function (el) {
      var key = el.getAttribute('data-json');
      if (el.type === 'checkbox') body[key] = el.checked;
      else if (el.type === 'number') { if (el.value !== '') body[key] = Number(el.value); }
      else body[key] = el.value.trim();
      count++;
    });
    return count ? body : undefined;
  }

  function wireApiForm(form) {
    var out = pageOutcome();
    var running = false;
    wireValidation(form);
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      if (running || !out) return;
      clearErrors(form);
      var question = form.getAttribute('data-confirm');
      if (question && !window.confirm(question)) {
        say(out, 'Nothing was changed.');
        return;
      }
      running = true;
      var button = form.querySelector('button[type=submit]');
      busy(button, true);
      api(form.getAttribute('data-api'), form.getAttribute('data-path'), jsonOf(form))
        .then(function () { flashAndReload(form.getAttribute('data-done') || 'Done.'); },
          function (e) { showServerError(form, e, out); running = false; busy(button, false); });
    });
  }

  // A new personal token: shown once, with a copy button; added to the list without a reload (which would lose it).
  function wireCreateToken(form) {
    var out = pageOutcome();
    var once = document.querySelector('[data-token-once]');
    var table = document.querySelector('[data-token-table] tbody');
    var empty = document.querySelector('[data-token-empty]');
    wireValidation(form);
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      clearErrors(form);
      var name = form.querySelector('#token-name').value.trim();
      var days = form.querySelector('#token-days').value;
      var body = { name: name };
      if (days !== '') body.expires_in_days = Number(days);
      api('POST', '/api/v1/tokens', body).then(function (t) {
        once.hidden = false;
        document.getElementById('new-token').textContent = t.token;
        say(out, 'Created the token \u201c' + name + '\u201d. Copy it now: it is shown only once.');
        appendTokenRow(table, empty, [name, 'Just now', 'Never', days ? 'In ' + days + ' days' : 'Never'], {
          path: '/api/v1/tokens/' + enc(t.id),
          done: 'Revoked the token ' + name + '.',
          confirm: 'Revoke the token ' + name + '? Programs using it stop working within a second.'
        });
        form.reset();
      }, function (e) { showServerError(form, e, out); });
    });
  }

  // A token just created, as a row of its table (cells as text) with its Delete form (revoke.path, .done, .confirm).
  function appendTokenRow(table, empty, cells, revoke) {
    var row = document.createElement('tr');
    cells.forEach(function (text) {
      var td = document.createElement('td');
      td.textContent = text;
      row.appendChild(td);
    });
    var last = document.createElement('td');
    last.className = 'num';
    var form = document.createElement('form');
    form.className = 'inline-form';
    form.setAttribute('data-api', 'DELETE');
    form.setAttribute('data-path', revoke.path);
    form.setAttribute('data-done', revoke.done);
    form.setAttribute('data-confirm', revoke.confirm);
    var button = document.createElement('button');
    button.className = 'btn small danger';
    button.type = 'submit';
    button.textContent = 'Delete';
    form.appendChild(button);
    last.appendChild(form);
    wireApiForm(form);
    row.appendChild(last);
    table.appendChild(row);
    if (empty) empty.hidden = true;
  }

  // A new agent token of the workspace: shown once, with a copy button; added to the list without a reload.
  function wireCreateAgentToken(form) {
    var out = pageOutcome();
    var once = document.querySelector('[data-token-once]');
    var table = document.querySelector('[data-token-table] tbody');
    var empty = document.querySelector('[data-token-empty]');
    wireValidation(form);
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      clearErrors(form);
      var name = form.querySelector('#agent-token-name').value.trim();
      var crew = form.querySelector('#agent-token-crew');
      var days = form.querySelector('#agent-token-days').value;
      var body = { name: name };
      if (crew.value !== '') body.crew_id = crew.value;
      if (days !== '') body.expires_in_days = Number(days);
      var path = '/api/v1/workspaces/' + enc(form.getAttribute('data-workspace')) + '/agent-tokens';
      api('POST', path, body).then(function (t) {
        once.hidden = false;
        document.getElementById('new-token').textContent = t.token;
        say(out, 'Created the agent token \u201c' + name + '\u201d. Copy it now: it is shown only once.');
        var reaches = crew.options[crew.selectedIndex].textContent;
        appendTokenRow(table, empty, [name, reaches, 'Just now', 'Never', days ? 'In ' + days + ' days' : 'Never'], {
          path: '/api/v1/agent-tokens/' + enc(t.id),
          done: 'Revoked the agent token ' + name + '.',
          confirm: 'Revoke the agent token ' + name + '? Agents using it stop working within a second.'
        });
        form.reset();
      }, function (e) { showServerError(form, e, out); });
    });
  }

  window.Plugboard = {
    api: api, outcome: outcome, say: say, fail: fail, wireValidation: wireValidation, clearErrors: clearErrors,
    showServerError: showServerError, busy: busy, check: check
  };

  document.querySelectorAll('[data-connector-form]').forEach(wireConnectorForm);
  document.querySelectorAll('[data-integration-form]').forEach(wireIntegrationForm);
  document.querySelectorAll('[data-oauth-start]').forEach(wireOAuthStart);
  document.querySelectorAll('[data-delete]').forEach(wireDelete);
  document.querySelectorAll('[data-catalog-filter]').forEach(wireCatalogFilter);
  document.querySelectorAll('[data-create-workspace]').forEach(wireCreateWorkspace);
  document.querySelectorAll('[data-copy]').forEach(wireCopy);
  document.querySelectorAll('form[data-api]').forEach(wireApiForm);
  document.querySelectorAll('[data-create-token]').forEach(wireCreateToken);
  document.querySelectorAll('[data-create-agent-token]').forEach(wireCreateAgentToken);
  showFlash();
})();
