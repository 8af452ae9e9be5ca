// The recyclebin console: plain JavaScript over the public REST API.
//
// The pages come from the server without data; this script fills them by calling the API
// with the bearer token the user signed in with. The token lives in sessionStorage (this
// tab only) and is sent in the Authorization header, never in a URL. Every value from the
// API is put into the page with textContent (the Content-Security-Policy requires Trusted
// Types, so assigning a string as HTML would throw). A 401 from the API signs out and
// shows the sign-in page again.
"use strict";

(function () {
  const TOKEN_KEY = "recyclebin.token";
  const WHO_KEY = "recyclebin.signedInAs";
  const MINUTE = 60 * 1000;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;

  // ------------------------------------------------------------------ pure functions

  // "2026-01-31T23:59:30.123456Z" (or with a +hh:mm offset) -> milliseconds since the
  // epoch, or NaN. Written out because Date.parse's handling of 6 fractional digits and
  // of years before 1970 is not something to rely on.
  function parseUtc(text) {
    const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|([+-])(\d\d):(\d\d))$/
      .exec(String(text));
    if (m === null) return NaN;
    const millis = m[7] === undefined ? 0 : Number((m[7] + "00").slice(0, 3));
    const date = new Date(0);
    date.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
    date.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), millis);
    let offset = 0;
    if (m[8] !== "Z") {
      offset = (Number(m[10]) * 60 + Number(m[11])) * MINUTE * (m[9] === "-" ? -1 : 1);
    }
    return date.getTime() - offset;
  }

  function pad(value, width) {
    return String(value).padStart(width, "0");
  }

  // Milliseconds since the epoch -> "2026-01-31 23:59:30 UTC".
  function formatUtc(ms) {
    const d = new Date(ms);
    return pad(d.getUTCFullYear(), 4) + "-" + pad(d.getUTCMonth() + 1, 2) + "-" +
      pad(d.getUTCDate(), 2) + " " + pad(d.getUTCHours(), 2) + ":" +
      pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) + " UTC";
  }

  // Time left until the physical deletion, "13 d 23 h 59 m", rounded down to the minute
  // (a fresh 14-day delete shows "13 d 23 h 59 m"). A difference of instants, so month
  // and year ends change nothing (UTC has no daylight saving time).
  function formatCountdown(purgeAtMs, nowMs) {
    const left = purgeAtMs - nowMs;
    if (!(left > 0)) return "due now";
    const days = Math.floor(left / DAY);
    const hours = Math.floor((left % DAY) / HOUR);
    const minutes = Math.floor((left % HOUR) / MINUTE);
    return days + " d " + hours + " h " + minutes + " m";
  }

  // For the browser tests.
  window.recyclebinConsole = Object.freeze({ parseUtc, formatUtc, formatCountdown });

  // -------------------------------------------------------------------- page helpers

  function $(id) {
    return document.getElementById(id);
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function setList(list, items, empty) {
    list.replaceChildren();
    if (items.length === 0) {
      list.append(element("li", empty, "empty"));
      return;
    }
    for (const item of items) list.append(element("li", item));
  }

  function say(text, kind) {
    const status = $("status");
    if (!status) return;
    status.textContent = text;
    status.className = kind === "error" ? "notice error" : "notice";
  }

  function signOut(reason) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(WHO_KEY);
    // The sign-in page is the console's directory; relative, so any prefix works.
    window.location.replace("./?reason=" + encodeURIComponent(reason));
  }

  // ---------------------------------------------------------------------- API client

  class ApiFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const apiBase = new URL(document.body.dataset.api || "../", document.baseURI);

  function segment(value) {
    return encodeURIComponent(value);
  }

  async function callApi(method, path, options) {
    const opts = options || {};
    const token = opts.token || sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      signOut("missing");
      throw new ApiFailure(401, "unauthenticated", "Not signed in.");
    }
    const url = new URL(path, apiBase);
    for (const [key, value] of Object.entries(opts.query || {})) {
      if (value !== undefined && value !== null && value !== "") {
        url.searchParams.set(key, String(value));
      }
    }
    const headers = { "Authorization": "Bearer " + token, "Accept": "application/json" };
    const init = { method, headers, credentials: "omit", cache: "no-store",
                   referrerPolicy: "no-referrer", redirect: "error" };
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      throw new ApiFailure(0, "unreachable", "The recyclebin server could not be reached.");
    }
    let body = null;
    const text = await response.text();
    if (text) {
      try {
        body = JSON.parse(text);
      } catch (error) {
        body = null;
      }
    }
    if (response.status === 401 && !opts.token) {
      signOut("invalid");
    }
    if (!response.ok) {
      const detail = body && body.error;
      const message = detail && typeof detail.message === "string" ? detail.message :
        "The server answered " + response.status + " " + response.statusText + ".";
      throw new ApiFailure(response.status, detail ? detail.code : "http_error", message);
    }
    return body;
  }

  // ---------------------------------------------------------------------- the header

  function setUpHeader() {
    const who = $("signed-in-as");
    if (who) {
      const name = sessionStorage.getItem(WHO_KEY);
      who.textContent = name ? "Signed in as " + name : "";
    }
    const button = $("sign-out");
    if (button) button.addEventListener("click", () => signOut("signed_out"));
  }

  // ------------------------------------------------------------------------- sign in

  function signInPage() {
    const form = $("sign-in");
    const message = $("sign-in-message");
    const input = $("token");
    input.focus();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) {
        message.textContent = "Enter your bearer token.";
        return;
      }
      message.textContent = "Checking the token…";
      try {
        const me = await callApi("GET", "me", { token });
        sessionStorage.setItem(TOKEN_KEY, token);
        sessionStorage.setItem(WHO_KEY, me.platform ? "the platform" : me.principal_id);
        input.value = "";
        window.location.assign("workspaces");
      } catch (error) {
        input.value = "";
        message.textContent = error.status === 401 ?
          "The token was not accepted: it is wrong or no longer valid." : error.message;
      }
    });
  }

  // -------------------------------------------------------------- filter and paging

  function filterValues() {
    const params = new URLSearchParams(window.location.search);
    return {
      subscription: (params.get("subscription") || "").trim(),
      resourceGroup: (params.get("resource_group") || "").trim(),
      limit: Number(document.body.dataset.limit) || 25,
    };
  }

  // Keyset paging with the API's cursors: a stack of the cursors of the pages seen.
  function pager(load) {
    const previous = $("previous-page");
    const next = $("next-page");
    const number = $("page-number");
    const cursors = [null];
    let nextCursor = null;
    let busy = false;

    async function show(index) {
      busy = true;
      previous.disabled = true;
      next.disabled = true;
      try {
        nextCursor = await load(cursors[index]);
        cursors.length = index + 1;
        number.textContent = "Page " + (index + 1);
      } finally {
        busy = false;
        previous.disabled = cursors.length <= 1;
        next.disabled = nextCursor === null;
      }
    }
    next.addEventListener("click", () => {
      if (busy || nextCursor === null) return;
      cursors.push(nextCursor);
      show(cursors.length - 1).catch(() => {});
    });
    previous.addEventListener("click", () => {
      if (busy || cursors.length <= 1) return;
      show(cursors.length - 2).catch(() => {});
    });
    return {
      first: () => show(0),
      again: () => show(cursors.length - 1),
    };
  }

  // Without a subscription a page has nothing to show: it says so and waits for one.
  function askForSubscription(filter, message) {
    if (filter.subscription) return false;
    say(message);
    $("subscription").focus();
    return true;
  }

  function emptyRow(tbody, text, columns) {
    const row = element("tr");
    const cell = element("td", text, "empty");
    cell.colSpan = columns;
    row.append(cell);
    tbody.append(row);
  }

  const policies = new Map();

  async function policyOf(subscription) {
    if (!policies.has(subscription)) {
      policies.set(subscription,
        await callApi("GET", "subscriptions/" + segment(subscription) + "/policy"));
    }
    return policies.get(subscription);
  }

  // The filter's listing: "workspaces" or "deletedWorkspaces", of a group or of all.
  function listPath(filter, collection) {
    const subscription = "subscriptions/" + segment(filter.subscription);
    return filter.resourceGroup ?
      subscription + "/resourceGroups/" + segment(filter.resourceGroup) + "/" + collection :
      subscription + "/" + collection;
  }

  function workspacePath(ws, collection) {
    return "subscriptions/" + segment(ws.subscription_id) + "/resourceGroups/" +
      segment(ws.resource_group) + "/" + collection + "/" + segment(ws.name);
  }

  // ---------------------------------------------------------------------- workspaces

  function workspacesPage() {
    const filter = filterValues();
    const tbody = document.querySelector("#workspaces tbody");
    const dialog = deleteDialog(() => paging.again().catch(() => {}));

    async function load(cursor) {
      let page;
      try {
        page = await callApi("GET", listPath(filter, "workspaces"),
                             { query: { limit: filter.limit, cursor } });
      } catch (error) {
        say(error.message, "error");
        throw error;
      }
      tbody.replaceChildren();
      for (const ws of page.value) {
        const row = element("tr");
        row.append(element("td", ws.name, "name"), element("td", ws.resource_group),
                   element("td", ws.state));
        const actions = element("td", null, "actions");
        const button = element("button", "Delete", "danger");
        button.type = "button";
        button.setAttribute("aria-label", "Delete " + ws.name);
        button.addEventListener("click", () => dialog.open(ws, button));
        actions.append(button);
        row.append(actions);
        tbody.append(row);
      }
      if (page.value.length === 0) emptyRow(tbody, "No live workspaces here.", 4);
      return page.next_cursor;
    }

    const paging = pager(load);
    if (askForSubscription(filter, "Enter a subscription to list its workspaces.")) return;
    paging.first().catch(() => {});
  }

  // The delete dialog: the API's dry run first, then the delete the user confirms.
  function deleteDialog(afterDelete) {
    const dialog = $("delete-dialog");
    const plan = $("delete-plan");
    const checking = $("delete-checking");
    const errorBox = $("delete-error");
    const permanentBlock = $("delete-permanently-block");
    const permanent = $("delete-permanently");
    const permanentNote = $("delete-permanently-note");
    const confirmBlock = $("confirm-name-block");
    const confirmInput = $("confirm-name");
    const ok = $("delete-ok");
    let current = null;   // {ws, policy, planOk, opener}
    let trial = 0;        // the latest dry run; older answers are dropped

    function updateOk() {
      ok.disabled = !(current && current.planOk &&
        (!current.policy.preconditions.require_confirm_name ||
         confirmInput.value === current.ws.name));
    }

    function showPlan(result) {
      setList($("plan-retained"), result.retained, "nothing");
      setList($("plan-destroyed"), result.destroyed, "nothing");
      setList($("plan-preserved"), result.preserved, "nothing");
      const purge = $("plan-purge");
      if (result.permanent) {
        purge.textContent = "Deleted permanently: nothing goes to the recycle bin and it " +
          "cannot be recovered.";
      } else {
        const at = parseUtc(result.purge_at);
        purge.textContent = "Purge date: " + formatUtc(at) + " (in " +
          formatCountdown(at, Date.now()) + "). Until then it can be recovered from the " +
          "recycle bin.";
      }
      $("plan-warnings-block").hidden = result.warnings.length === 0;
      setList($("plan-warnings"), result.warnings, "none");
      plan.hidden = false;
    }

    async function dryRun() {
      const mine = ++trial;
      const ws = current.ws;
      current.planOk = false;
      updateOk();
      plan.hidden = true;
      errorBox.textContent = "";
      checking.textContent = "Checking what the delete would do…";
      try {
        const policy = await policyOf(ws.subscription_id);
        if (mine !== trial) return;
        current.policy = policy;
        permanentBlock.hidden = !policy.permanent_delete.allowed;
        confirmBlock.hidden = !policy.preconditions.require_confirm_name;
        const result = await callApi("DELETE", workspacePath(ws, "workspaces"), { query: {
          dry_run: "true",
          permanently_delete: permanent.checked ? "true" : "false",
          // The dry run answers what the delete would do once confirmed.
          confirm_name: policy.preconditions.require_confirm_name ? ws.name : null,
        } });
        if (mine !== trial) return;
        if (result.permanent && !permanent.checked) {
          permanent.checked = true;
          permanent.disabled = true;
          permanentNote.textContent = "This workspace cannot go to the recycle bin.";
          permanentBlock.hidden = false;
        }
        checking.textContent = "Nothing has been deleted yet. This is what OK will do:";
        showPlan(result);
        current.planOk = true;
      } catch (error) {
        if (mine !== trial) return;
        checking.textContent = "This workspace cannot be deleted now.";
        errorBox.textContent = error.message;
      }
      updateOk();
    }

    permanent.addEventListener("change", () => {
      if (current) dryRun();
    });
    confirmInput.addEventListener("input", updateOk);
    $("delete-cancel").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      trial++;
      const opener = current && current.opener;
      current = null;
      if (opener && opener.isConnected) opener.focus();
    });

    ok.addEventListener("click", async () => {
      if (!current || ok.disabled) return;
      const { ws, policy } = current;
      ok.disabled = true;
      errorBox.textContent = "";
      try {
        const result = await callApi("DELETE", workspacePath(ws, "workspaces"), { query: {
          permanently_delete: permanent.checked ? "true" : "false",
          confirm_name: policy.preconditions.require_confirm_name ? confirmInput.value : null,
        } });
        dialog.close();
        say(result.permanent ?
          "Workspace " + ws.name + " was deleted permanently." :
          "Workspace " + ws.name + " was moved to the recycle bin; it can be recovered " +
          "until " + formatUtc(parseUtc(result.purge_at)) + ".");
        afterDelete();
      } catch (error) {
        errorBox.textContent = error.message;
        updateOk();
      }
    });

    return {
      open(ws, opener) {
        current = { ws, policy: null, planOk: false, opener };
        $("delete-name").textContent = ws.name;
        permanent.checked = false;
        permanent.disabled = false;
        permanentNote.textContent = "";
        permanentBlock.hidden = true;
        confirmBlock.hidden = true;
        confirmInput.value = "";
        dialog.showModal();
        dryRun().then(() => {
          if (!current) return;
          if (!confirmBlock.hidden) confirmInput.focus();
          else if (!ok.disabled) ok.focus();
        });
      },
    };
  }

  // --------------------------------------------------------------------- recycle bin

  function recycleBinPage() {
    const filter = filterValues();
    const tbody = document.querySelector("#deleted tbody");
    const dialog = $("purge-dialog");
    const purgeOk = $("purge-ok");
    const purgeError = $("purge-error");
    let purging = null;
    let policy = null;

    function tick() {
      const now = Date.now();
      for (const cell of tbody.querySelectorAll("[data-purge-at]")) {
        cell.firstChild.textContent = formatCountdown(Number(cell.dataset.purgeAt), now);
      }
    }

    async function act(button, work) {
      button.disabled = true;
      try {
        say(await work());
        await paging.again();
      } catch (error) {
        say(error.message, "error");
        button.disabled = false;
      }
    }

    async function load(cursor) {
      let page;
      try {
        [page, policy] = await Promise.all([
          callApi("GET", listPath(filter, "deletedWorkspaces"),
                  { query: { limit: filter.limit, cursor } }),
          policyOf(filter.subscription)]);
      } catch (error) {
        say(error.message, "error");
        throw error;
      }
      const now = Date.now();
      const rows = [];
      for (const item of page.value) {
        const row = element("tr");
        const purgeAt = parseUtc(item.purge_at);
        const countdown = element("td", null, "countdown");
        countdown.dataset.purgeAt = String(purgeAt);
        countdown.append(element("span", formatCountdown(purgeAt, now)),
                         element("span", "until " + formatUtc(purgeAt), "sub"));
        row.append(element("td", item.name, "name"), element("td", item.resource_group),
                   element("td", formatUtc(parseUtc(item.deleted_at)), "when"), countdown);
        const actions = element("td", null, "actions");
        const recover = element("button", "Recover");
        recover.type = "button";
        recover.setAttribute("aria-label", "Recover " + item.name);
        recover.addEventListener("click", () => act(recover, async () => {
          const result = await callApi("POST", workspacePath(item, "deletedWorkspaces") +
                                       "/recover");
          return "Workspace " + item.name + " was recovered." +
            (result.must_recreate.length ?
              " To recreate: " + result.must_recreate.join(", ") + "." : "");
        }));
        const purge = element("button", "Delete permanently", "danger");
        purge.type = "button";
        purge.setAttribute("aria-label", "Delete " + item.name + " permanently");
        if (!policy.permanent_delete.allowed) {
          purge.disabled = true;
          purge.title = "The policy does not allow a permanent delete here.";
        }
        purge.addEventListener("click", () => {
          purging = { item, button: purge };
          $("purge-name").textContent = item.name;
          purgeError.textContent = "";
          purgeOk.disabled = false;
          dialog.showModal();
          $("purge-cancel").focus();
        });
        actions.append(recover, purge);
        row.append(actions);
        rows.push(row);
      }
      tbody.replaceChildren(...rows);
      if (rows.length === 0) emptyRow(tbody, "The recycle bin is empty here.", 5);
      $("policy-note").textContent = policy.permanent_delete.allowed ? "" :
        "This subscription's policy does not allow a permanent delete: workspaces stay in " +
        "the recycle bin until their purge date.";
      return page.next_cursor;
    }

    purgeOk.addEventListener("click", async () => {
      if (!purging) return;
      const { item, button } = purging;
      purgeOk.disabled = true;
      try {
        await callApi("DELETE", workspacePath(item, "deletedWorkspaces"));
        purging = null;
        dialog.close();
        say("Workspace " + item.name + " was deleted permanently.");
        await paging.again();
      } catch (error) {
        purgeError.textContent = error.message;
        purgeOk.disabled = false;
        if (button.isConnected) button.disabled = false;
      }
    });
    $("purge-cancel").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      const opener = purging && purging.button;
      purging = null;
      if (opener && opener.isConnected) opener.focus();
    });

    const paging = pager(load);
    if (askForSubscription(filter, "Enter a subscription to see its recycle bin.")) return;
    paging.first().catch(() => {});
    window.setInterval(tick, 1000);
  }

  // --------------------------------------------------------------------------- admin

  function adminPage() {
    const filter = filterValues();
    const tbody = document.querySelector("#deletable tbody");
    if (askForSubscription(filter, "Enter a subscription to list its deletable workspaces.")) {
      return;
    }
    callApi("GET", "subscriptions/" + segment(filter.subscription) + "/deletableWorkspaces")
      .then((items) => {
        const rows = items.map((item) => {
          const row = element("tr");
          row.append(element("td", item.kind === "orphaned" ? "orphaned" : "deletion planned"),
                     element("td", item.workspace_id, "id"),
                     element("td", formatUtc(parseUtc(item.since)), "when"));
          return row;
        });
        tbody.replaceChildren(...rows);
        say(items.length === 0 ? "No deletable workspaces in this subscription." :
          items.length + " deletable workspace" + (items.length === 1 ? "" : "s") + ".");
      })
      .catch((error) => say(error.message, "error"));
  }

  // ---------------------------------------------------------------------------- start

  const pages = {
    "sign-in": signInPage,
    "workspaces": workspacesPage,
    "recycle-bin": recycleBinPage,
    "admin": adminPage,
  };

  function start() {
    const page = document.body.dataset.page;
    if (page !== "sign-in" && !sessionStorage.getItem(TOKEN_KEY)) {
      signOut("missing");
      return;
    }
    setUpHeader();
    const run = pages[page];
    if (run) run();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
