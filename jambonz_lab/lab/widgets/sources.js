// The platform sources widget (anywidget ES module, no build step): one line per Kazoo / Basix /
// Wazo connection, their calls (live first) and their newest events. Values use textContent only.

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

const TRAITS = ["connections", "calls", "events", "live"];

function row(className, cells, attrs) {
  const tr = make("tr", className);
  for (const [key, value] of Object.entries(attrs || {})) tr.setAttribute(key, value);
  tr.append(...cells.map(([cls, text]) => make("td", cls, text)));
  return tr;
}

function render({ model, el }) {
  const root = make("div", "jl-sources");
  const title = make("div", "jl-sources-title");
  const conns = make("table", "jl-connections");
  const calls = make("table", "jl-pcalls");
  const events = make("table", "jl-pevents");
  // the calls and the events in boxes of about ten rows that scroll: the widget stays small
  const box = (table) => {
    const div = make("div", "jl-scroll");
    div.append(table);
    return div;
  };
  root.append(title, conns, make("div", "jl-sub", "calls"), box(calls), make("div", "jl-sub", "events"), box(events));
  el.append(root);

  function update() {
    const live = model.get("live") || 0;
    title.textContent = `platform sources · live calls ${live}`;
    conns.replaceChildren(
      ...(model.get("connections") || []).map((c) =>
        row(
          `jl-source jl-state-${c.state || "none"}`,
          [
            ["jl-src", c.source],
            ["jl-source-state", c.state],
            ["jl-path", c.path],
            ["jl-n", `${c.events} events · ${c.errors} errors`],
            ["jl-note", c.note],
          ],
          { "data-source": c.source },
        ),
      ),
    );
    calls.replaceChildren(
      ...(model.get("calls") || []).map((c) =>
        row(
          c.live ? "jl-live" : "jl-past",
          [
            ["jl-src", c.source],
            ["jl-call-id", (c.call_id || "").slice(0, 20)],
            ["jl-caller", `${c.from || "?"} → ${c.to || "?"}`],
            ["jl-status", c.status],
          ],
          { "data-source": c.source, "data-call-id": c.call_id },
        ),
      ),
    );
    events.replaceChildren(
      ...(model.get("events") || []).map((e) =>
        row(
          `jl-ev jl-dir-${e.dir}`,
          [
            ["jl-time", e.time],
            ["jl-src", e.source],
            ["jl-type", e.type],
            ["jl-call-id", (e.call || "").slice(0, 20)],
            ["jl-detail", e.detail],
          ],
          { "data-source": e.source },
        ),
      ),
    );
  }

  return redrawOn(model, TRAITS, update);
}

export default { initialize, render };
