// The lab panel's header (anywidget ES module, no build step): the URL to give jambonz, the
// services, the counts and the session list. The panel's root `.jl-panel` is the ipywidgets VBox
// around this header and the session cards. Values are set with textContent only.

// make, redrawOn: common.js, imported once per model before any view renders (see _assets.py)
let make, redrawOn;
async function initialize({ model }) {
  const url = URL.createObjectURL(new Blob([model.get("_common")], { type: "text/javascript" }));
  try {
    ({ make, redrawOn } = await import(url));
  } finally {
    URL.revokeObjectURL(url);
  }
}

const TRAITS = ["url", "services", "calls", "live", "errors", "sessions", "running"];

function render({ model, el }) {
  const root = make("div", "jl-panel-header");
  const top = make("div", "jl-top");
  const url = make("code", "jl-url");
  const state = make("span", "jl-running");
  top.append(make("span", "jl-label", "jambonz call hook:"), url, state);
  const services = make("ul", "jl-services");
  const counts = make("div", "jl-counts");
  const sessions = make("table", "jl-sessions");
  root.append(top, services, counts, sessions);
  el.append(root);

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
    const rows = (model.get("sessions") || []).map((s) => {
      const tr = make("tr", s.live ? "jl-live" : "jl-past");
      tr.setAttribute("data-call-sid", s.call_sid);
      const st = make("td", "jl-status", s.status || "…");
      st.setAttribute("data-status", s.status || "");
      tr.append(
        make("td", "jl-sid", (s.call_sid || "").slice(0, 8)),
        st,
        make("td", "jl-caller", s.caller_name || ""),
        make("td", "jl-route", `${s.from || "?"} → ${s.to || "?"}`),
        make("td", "jl-n", `hooks ${s.hooks} · errors ${s.errors}`),
      );
      return tr;
    });
    sessions.replaceChildren(...rows);
  }

  return redrawOn(model, TRAITS, update);
}

export default { initialize, render };
