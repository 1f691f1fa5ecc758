/*
 * The lists inside "What I remember about you", drawn from GET /api/memories and GET /api/audit:
 * how the person was doing, what was learnt, past suggestions (each with its "What really
 * happened?" picker), success rates, the plan, check-ins, safety events and the account's activity.
 * Drawing only; loading and saving are memories.js's.
 * Everything here is the person's own words: always textContent, never parsed as HTML.
 */
import { humanize, ui } from "./page.js";

/** Outcomes a person can pick, in their words (memories/ranking.py Outcome). */
const OUTCOME_CHOICES = [
  ["task_completed", "It helped: I finished"],
  ["task_progress", "It helped: I made progress"],
  ["re_engaged", "It helped me get back to it"],
  ["distracted", "It didn't help: I got distracted"],
  ["abandoned", "It didn't help: I stopped"],
  ["unknown", "I'm not sure"],
];
export const OUTCOME_WORDS = { ...Object.fromEntries(OUTCOME_CHOICES), pending: "Not known yet" };
const AUDIT_WORDS = {
  sign_up: "Account made", sign_in: "Signed in", sign_out: "Signed out",
  sign_out_everywhere: "Signed out on every device", password_change: "Password changed",
  passkey_added: "Passkey added", export: "Downloaded everything", profile_edit: "Changed the profile",
  outcome_correction: "Corrected how a suggestion went", forget_request: "Asked to forget everything",
};
const FIELD_WORDS = {
  name: "name", timezone: "time zone", locale: "language", diagnosis: "diagnosis",
  diagnosis_source: "where the diagnosis comes from", consent_diagnosis_in_prompts: "using your diagnosis",
  consent_pooled_learning: "helping people like you", preferences: "preferences",
};
const SAFETY_WORDS = {
  suicide: "thoughts of suicide", self_harm: "self-harm", harm_others: "harming someone else",
  abuse: "abuse", medical: "a medical emergency",
};

function node(tag, text, className) {
  const el = document.createElement(tag);
  if (text !== undefined && text !== null) el.textContent = String(text);
  if (className) el.className = className;
  return el;
}

function timeEl(seconds) {
  const at = new Date(Number(seconds) * 1000);
  const el = node("time", at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
  el.dateTime = at.toISOString();
  return el;
}

/** Fills `list` with one <li> per item, or one calm "nothing yet" line. */
function fillList(list, items, render, empty) {
  const rows = (items || []).map(render).filter(Boolean);
  list.replaceChildren(...(rows.length ? rows : [node("li", empty, "empty")]));
}

const capitalize = (text) => (text ? text[0].toUpperCase() + text.slice(1) : text);

/** Every list but the profile form and the audit log; `onCorrect(id, outcome)` saves a picked outcome. */
export function renderLists(data, onCorrect) {
  renderState(data.current_state);
  fillList(ui.memoryReflections, data.reflections, (r) => {
    const li = node("li", null, "memory-item");
    li.dataset.testid = "memory-reflection";
    li.append(node("span", r.insight), " ", node("span", null, "meta"));
    li.lastChild.append("(", timeEl(r.created_at), ")");
    return li;
  }, "Nothing yet. I learn this from how my suggestions go.");
  fillList(ui.memoryInterventions, data.interventions, (item) => interventionItem(item, onCorrect), "Nothing yet.");
  const rates = Object.values(data.success_rates || {}).filter((r) => r.settled > 0);
  fillList(ui.memoryRates, rates, (r) => {
    const li = node("li", null, "memory-item");
    li.dataset.testid = "memory-rate";
    li.dataset.tool = r.tool_name;
    const share = Math.round((100 * r.value_sum) / r.settled);
    const label = r.tool_name === "none" ? "Just talking it through" : capitalize(humanize(r.tool_name));
    li.append(node("strong", label), `: ${r.settled} known ${r.settled === 1 ? "result" : "results"}, `
      + `about ${share}% helpful`);
    return li;
  }, "Nothing known yet.");
  renderPlanMemory(data.plan);
  fillList(ui.memoryScheduled, data.scheduled, (item) => {
    const li = node("li", null, "memory-item");
    li.dataset.testid = "memory-scheduled-item";
    li.append(node("strong", item.kind === "checkin" ? "Check-in" : "Reminder"), ", ", timeEl(item.due_at), ": ",
      node("span", item.text));
    return li;
  }, "Nothing planned.");
  fillList(ui.memorySafety, data.safety_events, (event) => {
    const li = node("li", null, "memory-item");
    li.dataset.testid = "memory-safety-event";
    li.append(timeEl(event.at), `: about ${SAFETY_WORDS[event.kind] || humanize(event.kind)}`
      + ` (${event.source === "voice" ? "said out loud" : "typed"})`);
    return li;
  }, "None.");
}

function renderState(state) {
  const rows = [];
  if (state) {
    if (state.mood && state.mood !== "unknown") rows.push(["Mood", humanize(state.mood)]);
    if (state.energy && state.energy !== "unknown") rows.push(["Energy", humanize(state.energy)]);
    const lists = [["Working on", state.focus_areas], ["Hard right now", state.pain_points],
      ["Recent wins", state.recent_wins], ["Recent setbacks", state.recent_losses]];
    for (const [label, items] of lists) if (items && items.length) rows.push([label, items.join("; ")]);
  }
  fillList(ui.memoryState, rows, ([label, text]) => {
    const li = node("li", null, "memory-item");
    li.dataset.testid = "memory-state-item";
    li.append(node("strong", label), ": ", node("span", text));
    return li;
  }, "Nothing yet.");
}

function interventionItem(item, onCorrect) {
  const li = node("li", null, "memory-item intervention");
  li.dataset.testid = "memory-intervention";
  li.dataset.id = item.id;
  li.dataset.outcome = item.outcome;
  const meta = node("p", null, "meta");
  meta.append(timeEl(item.created_at));
  if (item.tool_name) meta.append(` · ${capitalize(humanize(item.tool_name))}`);
  const said = node("p");
  said.append(node("strong", "You said: "), node("span", item.user_context));
  const suggested = node("p");
  suggested.append(node("strong", "I suggested: "), node("span", item.text));
  const went = node("p");
  const outcome = node("span", OUTCOME_WORDS[item.outcome] || humanize(item.outcome), "outcome");
  outcome.dataset.testid = "intervention-outcome";
  went.append(node("strong", "How it went: "), outcome);

  const fix = node("div", null, "correct");
  const selectId = `outcome-${item.id}`;
  const label = node("label", "What really happened?");
  label.htmlFor = selectId;
  const select = node("select");
  select.id = selectId;
  select.dataset.testid = "outcome-select";
  const choose = node("option", "Choose…");
  choose.value = "";
  choose.disabled = true;
  select.append(choose, ...OUTCOME_CHOICES.map(([value, words]) => {
    const option = node("option", words);
    option.value = value;
    return option;
  }));
  select.value = OUTCOME_WORDS[item.outcome] && item.outcome !== "pending" ? item.outcome : "";
  const change = node("button", "Change");
  change.type = "button";
  change.dataset.testid = "outcome-save";
  change.addEventListener("click", () => onCorrect(item.id, select.value));
  fix.append(label, select, change);
  li.append(meta, said, suggested, went, fix);
  return li;
}

function renderPlanMemory(plan) {
  if (!plan) { ui.memoryPlan.replaceChildren(node("p", "No plan right now.", "empty")); return; }
  const title = node("p");
  title.append(node("strong", "Task: "), node("span", plan.task));
  const list = node("ol", null, "plan");
  list.append(...plan.steps.map((text, index) => {
    const done = index < plan.current;
    const li = node("li", `${done ? "✓ " : (index === plan.current ? "→ " : "")}${text}`,
      done ? "step-done" : (index === plan.current ? "step-now" : ""));
    if (done) li.setAttribute("aria-label", `Done: ${text}`);
    return li;
  }));
  ui.memoryPlan.replaceChildren(title, list);
}

/** The account's activity, newest first; `events` null when it couldn't be loaded. */
export function renderAudit(events) {
  if (events === null) { ui.auditList.replaceChildren(node("li", "I couldn't load this just now.", "empty")); return; }
  fillList(ui.auditList, events, (event) => {
    const li = node("li", null, "memory-item");
    li.dataset.testid = "audit-event";
    li.dataset.kind = event.kind;
    let what = AUDIT_WORDS[event.kind] || capitalize(humanize(event.kind));
    const d = event.detail || {};
    if (d.method) what += d.method === "passkey" ? " with a passkey" : " with a password";
    if (d.fields) what += `: ${d.fields.split(",").map((f) => FIELD_WORDS[f] || humanize(f)).join(", ")}`;
    if (d.outcome) what += `: now “${OUTCOME_WORDS[d.outcome] || humanize(d.outcome)}”`;
    if (d.revoked) what += ` (${d.revoked} sign-ins ended)`;
    if (d.failed_before) {
      what += ` (after ${d.failed_before} wrong ${d.failed_before === "1" ? "password" : "passwords"} on your name`
        + " — if that wasn't you, change your password)";
    }
    li.append(timeEl(event.at), " · ", node("span", what, "what"), " · ", node("span", `from ${event.address}`, "meta"));
    return li;
  }, "Nothing yet.");
}
