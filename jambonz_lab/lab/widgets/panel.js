// The lab panel's header (anywidget ES module, no build step): the URL to give jambonz, the
// services, the counts and the compact call list. The panel's root `.jl-panel` is the ipywidgets
// VBox around this header and the one session card opened from the list. Values are set with
// textContent only: caller-controlled strings are data, never markup.
//
// DOM contract (browser tests rely on it): `.jl-url`; the list `.jl-calls`, one row per call
// `tr.jl-call[data-call-sid]` (newest first) with `.jl-status`, `.jl-caller`, `.jl-duration`,
// `.jl-last`; the open row has class `jl-open`; `.jl-opened` names the open card and holds
// `button.jl-close-card`. A click on a row sends {action: "open", call_sid}; the close button
// sends {action: "close"}; the kernel puts (or removes) the card below the list.

// make, redrawOn, clockText: common.js, imported once per model before any view renders (see _assets.py)
let make, redrawOn, clockText;
async function initialize({ model }) {
  const url = URL.createObjectURL(new Blob([model.get("_common")], { type: "text/javascript" }));
  try {
    ({ make, redrawOn, clockText } = await import(url));
  } finally {
    URL.revokeObjectURL(url);
  }
}

const TRAITS = ["url", "services", "calls", "live", "errors", "sessions", "running", "opened", "max_rows"];

function render({ model, el }) {
  const root = make("div", "jl-panel-header");
  const top = make("div", "jl-top");
  const url = make("code", "jl-url");
  const state = make("span", "jl-running");
  top.append(make("span", "jl-label", "jambonz call hook:"), url, state);
  const services = make("ul", "jl-services");
  const counts = make("div", "jl-counts");
  const scroller = make("div", "jl-calls-scroll");
  const calls = make("table", "jl-calls jl-sessions");
  const head = make("thead");
  const headRow = make("tr");
  for (const name of ["status", "caller", "duration", "last event"]) headRow.append(make("th", "", name));
  head.append(headRow);
  const body = make("tbody");
  calls.append(head, body);
  scroller.append(calls);
  const more = make("div", "jl-more");
  const opened = make("div", "jl-opened");
  const openedText = make("span", "jl-opened-text");
  const close = make("button", "jl-close-card", "Close card");
  close.type = "button";
  opened.append(openedText, close);
  root.append(top, services, counts, scroller, more, opened);
  el.append(root);

  body.addEventListener("click", (event) => {
    const tr = event.target instanceof Element ? event.target.closest("tr.jl-call") : null;
    const sid = tr && tr.getAttribute("data-call-sid");
    if (sid) model.send({ action: "open", call_sid: sid });
  });
  close.addEventListener("click", () => model.send({ action: "close" }));

  function update() {
    url.textContent = model.get("url") || "";
    state.textContent = model.get("running") ? "listening" : "stopped";
    services.replaceChildren(
      ...(model.get("services") || []).map((s) => {
        const li = make("li", "jl-service");
        li.append(make("code", "jl-service-url", s.url), make("span", "jl-service-path", ` (${s.path})`));
        return li;
      }),
    );
    counts.textContent = `calls ${model.get("calls")} · live ${model.get("live")} · errors ${model.get("errors")}`;
    counts.classList.toggle("jl-has-errors", model.get("errors") > 0);
    const open = model.get("opened") || "";
    const sessions = model.get("sessions") || [];
    const rows = sessions.map((s) => {
      const tr = make("tr", `jl-call ${s.live ? "jl-live" : "jl-past"}`);
      tr.setAttribute("data-call-sid", s.call_sid || "");
      tr.classList.toggle("jl-open", s.call_sid === open);
      tr.title = `${s.call_sid || ""}: ${s.from || "?"} → ${s.to || "?"} · hooks ${s.hooks} · errors ${s.errors}`
        + " · click to open its card";
      const st = make("td", "jl-status", s.status || "…");
      st.setAttribute("data-status", s.status || "");
      const dur = make("td", "jl-duration", clockText(s.duration));
      dur.title = s.clock === "call" ? "call time: the simulated call's own clock" : "wall time";
      const last = make("td", "jl-last", s.last || "");
      last.title = s.last || "";
      tr.append(st, make("td", "jl-caller", s.caller_name || s.from || "?"), dur, last);
      if (s.errors > 0) tr.classList.add("jl-has-errors");
      return tr;
    });
    body.replaceChildren(...rows);
    scroller.hidden = rows.length === 0;
    const hidden = (model.get("calls") || 0) - rows.length;
    more.textContent = hidden > 0 ? `${hidden} older call(s): lab.calls has them all` : "";
    more.hidden = hidden <= 0;
    const row = sessions.find((s) => s.call_sid === open);
    openedText.textContent = open
      ? `card of ${row ? row.caller_name || row.from || "?" : "call"} (${open.slice(0, 8)}) below`
      : "";
    opened.hidden = !open;
  }

  return redrawOn(model, TRAITS, update);
}

export default { initialize, render };
