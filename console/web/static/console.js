// goldsmith console: live updates layered on pages that work without it.
// - A page marked data-live refreshes its #live block (the same page fetched
//   with X-Console-Fragment) while something on it is changing.
// - A running run's log (#log[data-follow]) streams in as the build writes
//   it, keeping at most MAX_LINES lines in the page.
// - The new template form is checked as it is edited; Create stays disabled
//   while the template has problems.
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const MAX_LINES = 5000;

  const stateText = () => {
    const e = document.getElementById("run-state") || document.getElementById("provisioning");
    return e ? e.textContent.trim() : "";
  };

  function refreshLive() {
    const live = document.getElementById("live");
    if (!live || !document.body.dataset.live) return;
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try {
        const res = await fetch(location.href, { headers: { "X-Console-Fragment": "live" }, credentials: "same-origin" });
        if (res.ok) {
          // Keep keyboard focus across the swap: refocus the element with
          // the same id, if the new block has it.
          const focused = live.contains(document.activeElement) ? document.activeElement.id : "";
          const before = stateText();
          live.innerHTML = await res.text();
          // Say a change of state once, not the whole refreshed block.
          const after = stateText();
          if (after && after !== before) document.getElementById("announce").textContent = "State: " + after;
          if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
          if (res.headers.get("X-Console-Live") !== "1") {
            clearInterval(timer);
            delete document.body.dataset.live;
          }
        }
      } catch (e) { /* the next tick tries again */ }
      busy = false;
    };
    const timer = setInterval(tick, 1500);
    window.consoleRefresh = tick;
  }

  function followLog() {
    const pre = document.getElementById("log");
    if (!pre || !pre.dataset.follow) return;
    let lines = pre.textContent.split("\n").length;
    let partial = "";
    pre.dataset.streamed = "0";
    const append = (text) => {
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(text));
      lines += (text.match(/\n/g) || []).length;
      pre.dataset.streamed = String(Number(pre.dataset.streamed) + (text.match(/\n/g) || []).length);
      // Keep the page light: drop the oldest text nodes beyond MAX_LINES.
      while (lines > MAX_LINES && pre.firstChild && pre.firstChild !== pre.lastChild) {
        lines -= (pre.firstChild.textContent.match(/\n/g) || []).length;
        pre.removeChild(pre.firstChild);
      }
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    };
    const run = async () => {
      const url = pre.dataset.src + "?follow=1&offset=" + encodeURIComponent(pre.dataset.offset || "0");
      const res = await fetch(url, { credentials: "same-origin", headers: { "X-Console-Fragment": "log" } });
      if (!res.ok || !res.body) return;
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let pending = "";
      let scheduled = false;
      const flush = () => { scheduled = false; if (pending) { append(pending); pending = ""; } };
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const text = partial + dec.decode(value, { stream: true });
        const cut = text.lastIndexOf("\n") + 1;
        partial = text.slice(cut);
        pending += text.slice(0, cut);
        if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
      }
      pending += partial;
      flush();
      pre.dataset.done = "1";
      if (window.consoleRefresh) window.consoleRefresh();
    };
    run().catch(() => {});
  }

  function checkForm() {
    const form = document.getElementById("new-template");
    if (!form) return;
    const out = document.getElementById("check");
    const create = document.getElementById("create-button");
    let timer = null, seq = 0;
    const render = (r) => {
      out.textContent = "";
      const h = document.createElement("h2");
      h.id = "problems-h";
      h.textContent = r.problems && r.problems.length ? "Problems: " + r.problems.length : "No problems";
      out.appendChild(h);
      const list = (items, warn) => {
        const ul = document.createElement("ul");
        ul.className = warn ? "problems warnings" : "problems";
        for (const p of items) {
          const li = document.createElement("li");
          const path = document.createElement("code");
          path.className = "path";
          path.textContent = p.target || "(document)";
          const code = document.createElement("span");
          code.className = "code";
          code.textContent = p.code;
          if (warn) li.append(path, " ", p.message);
          else li.append(path, " ", code, " ", p.message);
          ul.appendChild(li);
        }
        return ul;
      };
      if (r.problems && r.problems.length) out.appendChild(list(r.problems));
      if (r.warnings && r.warnings.length) {
        const h3 = document.createElement("h3");
        h3.textContent = "Warnings";
        out.append(h3, list(r.warnings, true));
      }
      create.disabled = !r.ok;
    };
    const check = async () => {
      const mine = ++seq;
      const data = new FormData(form);
      data.set("action", "check");
      try {
        const res = await fetch(form.getAttribute("action"), { method: "POST", body: data, credentials: "same-origin",
          headers: { "Accept": "application/json", "X-CSRF-Token": csrf } });
        const r = await res.json();
        if (mine === seq) render(r);
      } catch (e) { /* Check and Create still work without the script */ }
    };
    form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 350); });
    const file = document.getElementById("file");
    file.addEventListener("change", async () => {
      if (file.files.length) {
        document.getElementById("source").value = await file.files[0].text();
        file.value = "";
        check();
      }
    });
    if (document.getElementById("source").value.trim()) check();
  }

  document.addEventListener("DOMContentLoaded", () => { refreshLive(); followLog(); checkForm(); });
})();
