// The session card of jambonz_lab (anywidget ES module, no build step).
//
// DOM contract (browser tests rely on it): root `.jl-card[data-call-sid]`, status `.jl-status`,
// caller name `.jl-caller`, buttons `button.jl-hangup` / `button.jl-mute` / `button.jl-send`,
// latest events `.jl-events > li`, the level meter `.jl-audio[data-state]` with one
// `.jl-level[data-label]` per channel (a `<meter>` and its dBFS as text). Every value from the call (names, numbers, transcripts) is
// set with textContent or setAttribute: caller-controlled strings are data, never markup.

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

const TRAITS = [
  "call_sid", "from_", "to", "caller_name", "direction", "status", "statuses", "verbs",
  "events", "clock", "hooks", "errors", "live", "state", "queued", "muted", "error",
  "audio_state", "audio_labels", "audio_levels",
];

// the meter's scale: -60 dBFS (and quieter) is empty, 0 dBFS full
const METER_MIN = -60;

function render({ model, el }) {
  const root = make("div", "jl-card");

  const header = make("div", "jl-header");
  const status = make("span", "jl-status");
  const caller = make("span", "jl-caller");
  const route = make("span", "jl-route");
  const sid = make("code", "jl-sid");
  header.append(status, caller, route, sid);

  const facts = make("div", "jl-facts");
  const counters = make("span", "jl-counters");
  const verbs = make("span", "jl-verbs");
  facts.append(counters, verbs);

  const buttons = make("div", "jl-buttons");
  const hangup = make("button", "jl-hangup", "Hang up");
  const mute = make("button", "jl-mute", "Mute");
  const send = make("button", "jl-send", "Send queued");
  for (const b of [hangup, mute, send]) b.type = "button";
  buttons.append(hangup, mute, send);

  const error = make("div", "jl-error");
  const audio = make("div", "jl-audio");
  const events = make("ol", "jl-events");
  root.append(header, facts, buttons, error, audio, events);
  el.append(root);

  hangup.addEventListener("click", () => model.send({ action: "hangup" }));
  mute.addEventListener("click", () => model.send({ action: model.get("muted") ? "unmute" : "mute" }));
  send.addEventListener("click", () => model.send({ action: "send" }));

  function update() {
    const callSid = model.get("call_sid") || "";
    root.setAttribute("data-call-sid", callSid);
    const st = model.get("status") || "";
    status.textContent = st || "…";
    status.setAttribute("data-status", st);
    caller.textContent = model.get("caller_name") || "";
    route.textContent = `${model.get("from_") || "?"} → ${model.get("to") || "?"}`
      + (model.get("direction") ? ` (${model.get("direction")})` : "");
    sid.textContent = callSid.slice(0, 8);
    sid.title = callSid;
    const live = Boolean(model.get("live"));
    root.classList.toggle("jl-ended", !live);
    counters.textContent = `hooks ${model.get("hooks")} · errors ${model.get("errors")}`
      + ` · socket ${model.get("state") || "?"}`;
    counters.classList.toggle("jl-has-errors", model.get("errors") > 0);
    const names = model.get("verbs") || [];
    verbs.textContent = names.length ? `verbs: ${names.join(", ")}` : "no verbs sent yet";
    mute.textContent = model.get("muted") ? "Unmute" : "Mute";
    const queued = model.get("queued") || 0;
    send.textContent = `Send queued (${queued})`;
    hangup.disabled = !live;
    mute.disabled = !live;
    send.disabled = !live || queued === 0;
    error.textContent = model.get("error") || "";
    error.hidden = !model.get("error");

    updateAudio();

    const onCall = model.get("clock") === "call";
    root.setAttribute("data-clock", onCall ? "call" : "wall");
    events.title = onCall
      ? "call time: the simulated call's own clock"
      : "wall time since the call's first event";
    const items = (model.get("events") || []).map((ev) => {
      const li = make("li", `jl-event jl-dir-${ev.dir}`);
      li.setAttribute("data-type", ev.type);
      li.append(
        make("span", "jl-t", clockText(ev.t)),
        make("span", "jl-dir", ev.dir),
        make("span", "jl-type", ev.type),
        make("span", "jl-hook", ev.hook || ""),
        make("span", "jl-detail", ev.detail || ""),
      );
      return li;
    });
    events.replaceChildren(...items);
  }

  function updateAudio() {
    const state = model.get("audio_state") || "";
    audio.hidden = !state;
    audio.setAttribute("data-state", state);
    audio.title = state === "flowing"
      ? "listen/stream audio: RMS over the newest 0.1 s"
      : `listen/stream audio ${state}`;
    const labels = model.get("audio_labels") || [];
    const levels = model.get("audio_levels") || [];
    const rows = labels.map((label, i) => {
      const db = Number(levels[i]);
      const value = Number.isFinite(db) ? db : METER_MIN;
      const row = make("span", "jl-level");
      row.setAttribute("data-label", String(label));
      const bar = document.createElement("meter");
      bar.min = METER_MIN;
      bar.max = 0;
      bar.low = -30;
      bar.high = -6;
      bar.optimum = -20;
      bar.value = Math.max(METER_MIN, Math.min(0, value));
      row.append(
        make("span", "jl-level-label", label),
        bar,
        make("span", "jl-level-db", state === "ended" ? "ended" : `${value.toFixed(1)} dBFS`),
      );
      return row;
    });
    audio.replaceChildren(...rows);
  }

  return redrawOn(model, TRAITS, update);
}

export default { initialize, render };
