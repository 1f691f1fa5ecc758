/*
 * The "Current step" and "Next check-in" cards: the plan's steps with the current one marked,
 * and the next check-in as "in N minutes", kept honest by a slow timer.
 */
import { ui } from "./page.js";

let checkin = null;
let checkinTimer = null;

/** A "plan" frame: the task, its steps, where the person is, and the next check-in. */
export function showPlan(frame) {
  ui.step.textContent = frame.done ? "All done! 🎉" : (frame.step || "No step yet.");
  const steps = Array.isArray(frame.steps) ? frame.steps : [];
  ui.plan.replaceChildren(...steps.map((text, index) => {
    const li = document.createElement("li");
    const number = index + 1;
    const isDone = frame.done || (frame.current && number < frame.current);
    const isNow = !frame.done && number === frame.current;
    li.className = isDone ? "step-done" : (isNow ? "step-now" : "");
    li.textContent = `${isDone ? "✓ " : (isNow ? "→ " : "")}${text}`;
    if (isDone) li.setAttribute("aria-label", `Done: ${text}`);
    if (isNow) li.setAttribute("aria-current", "step");
    return li;
  }));
  ui.plan.hidden = steps.length === 0;
  ui.planTitle.hidden = steps.length === 0;
  ui.planTitle.textContent = frame.task ? `Plan: ${frame.task}` : "Plan";
  checkin = frame.next_checkin && Number.isFinite(frame.next_checkin.due_at) ? frame.next_checkin : null;
  renderCheckin();
  clearInterval(checkinTimer);
  // Minutes change slowly; a 15 s refresh keeps "in N minutes" honest without visible churn.
  if (checkin) checkinTimer = setInterval(renderCheckin, 15000);
}

function inMinutes(dueAt) {
  const seconds = dueAt - Date.now() / 1000;
  if (seconds <= 0) return "now";
  const minutes = Math.round(seconds / 60);
  if (minutes === 0) return "in less than a minute";
  return minutes === 1 ? "in 1 minute" : `in ${minutes} minutes`;
}

function renderCheckin() {
  if (!checkin) {
    ui.checkin.textContent = "None planned.";
    delete ui.checkin.dataset.dueAt;
    return;
  }
  const when = inMinutes(checkin.due_at);
  ui.checkin.textContent = checkin.what ? `${when[0].toUpperCase()}${when.slice(1)}: ${checkin.what}` : when;
  ui.checkin.dataset.dueAt = String(checkin.due_at);
}
