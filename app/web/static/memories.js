/*
 * "What I remember about you": loading it when opened, the profile form (name, time zone, the two
 * consents), correcting how a suggestion went, downloading everything, and "forget me". Keeps
 * nothing of one person on the page for the next. The lists themselves are drawn by memory-lists.js.
 */
import { OUTCOME_WORDS, renderAudit, renderLists } from "./memory-lists.js";
import { api, clearError, detailOf, showError, ui } from "./page.js";
import { forgetKnownAccount, showSignin } from "./signin.js";
import { leaveSession, setForgetting } from "./socket.js";

const memory = { seq: 0, user: null, profile: null, profileDirty: false };
const DIAGNOSIS_WORDS = { ADHD: "ADHD", AUTISM: "autism", BOTH: "ADHD and autism" };
// What each consent is when the profile does not say (no profile stored yet): as memories/profile.py.
const CONSENT_DEFAULTS = { consent_diagnosis_in_prompts: false, consent_pooled_learning: true };
const consentOf = (profile, key) =>
  (profile && typeof profile[key] === "boolean" ? profile[key] : CONSENT_DEFAULTS[key]);

function setNote(el, text, state) {
  el.textContent = text;
  el.dataset.state = state || "";
}

/** Closed and empty: nothing of one person stays on the page for the next. `user` is who is
 * signed in now (null: nobody). */
export function resetMemory(user = null) {
  memory.seq += 1; // a load still on its way is dropped when it lands
  memory.user = null;
  memory.profile = null;
  memory.profileDirty = false;
  ui.memory.open = false;
  delete ui.memory.dataset.state;
  for (const list of [ui.memoryState, ui.memoryReflections, ui.memoryInterventions, ui.memoryRates,
    ui.memoryScheduled, ui.memorySafety, ui.auditList, ui.memoryPlan]) list.replaceChildren();
  for (const note of [ui.memoryNote, ui.profileNote, ui.outcomeNote, ui.downloadNote, ui.forgetNote]) setNote(note, "");
  ui.profileForm.reset();
  ui.profileDiagnosis.textContent = "";
  closeForget();
  memory.user = user;
}

/** The session ended elsewhere (signed out, expired): back to the sign-in screen. */
function signedOutElsewhere() {
  leaveSession();
  showSignin();
  showError("Please sign in again: you were signed out, or your sign-in has expired.");
}

async function loadMemories() {
  const seq = ++memory.seq;
  ui.memory.dataset.state = "loading";
  setNote(ui.memoryNote, "Loading…");
  const [shown, trail] = await Promise.all([api("/api/memories"), api("/api/audit")]);
  if (seq !== memory.seq) return; // signed out, or a newer load started meanwhile
  if (shown.status === 401 || trail.status === 401) { signedOutElsewhere(); return; }
  if (!shown.ok) {
    ui.memory.dataset.state = "error";
    setNote(ui.memoryNote, detailOf(shown.body, "I couldn't load this just now. Press Refresh to try again."), "error");
    return;
  }
  if (!memory.profileDirty) renderProfile(shown.body.profile);
  renderLists(shown.body, correctOutcome);
  renderAudit(trail.ok ? trail.body.events : null);
  ui.memory.dataset.state = "loaded";
  const now = new Date().toLocaleTimeString(undefined, { timeStyle: "short" });
  setNote(ui.memoryNote, `Up to date (${now}).`);
}

async function loadAudit() {
  const seq = memory.seq;
  const trail = await api("/api/audit");
  if (seq === memory.seq && trail.ok) renderAudit(trail.body.events);
}

// ---- changes the person makes -------------------------------------------------------------

function renderProfile(profile) {
  memory.profile = profile || null;
  memory.profileDirty = false;
  ui.profileName.value = (profile && profile.name) || "";
  ui.profileTimezone.value = (profile && profile.timezone) || "";
  ui.profileTimezone.placeholder = "UTC";
  ui.consentDiagnosis.checked = consentOf(profile, "consent_diagnosis_in_prompts");
  const told = profile && DIAGNOSIS_WORDS[profile.diagnosis];
  ui.profileDiagnosis.textContent = told ? `You told me: ${told}.` : "You haven't told me about a diagnosis.";
  ui.consentPooled.checked = consentOf(profile, "consent_pooled_learning");
}

async function correctOutcome(id, outcome) {
  if (!outcome) { setNote(ui.outcomeNote, "Pick what really happened first.", "error"); return; }
  setNote(ui.outcomeNote, "Saving…");
  const answer = await api(`/api/interventions/${encodeURIComponent(id)}/outcome`, { outcome });
  if (answer.status === 401) { signedOutElsewhere(); return; }
  if (!answer.ok) {
    setNote(ui.outcomeNote, detailOf(answer.body, "That wasn't saved. Please try again."), "error");
    return;
  }
  await loadMemories();
  setNote(ui.outcomeNote, `Thanks, changed to “${OUTCOME_WORDS[outcome]}”. I'll learn from that.`, "ok");
  const again = [...ui.memoryInterventions.children].find((li) => li.dataset.id === id);
  if (again) again.querySelector("button").focus(); // keep the person's place in the list
}

async function saveProfile() {
  const before = memory.profile || {};
  const changes = {};
  const name = ui.profileName.value.trim();
  if (name !== (before.name || "")) changes.name = name || null; // empty: forget the name
  const timezone = ui.profileTimezone.value.trim();
  if (timezone && timezone !== (before.timezone || "UTC")) changes.timezone = timezone;
  for (const [key, box] of [["consent_diagnosis_in_prompts", ui.consentDiagnosis],
    ["consent_pooled_learning", ui.consentPooled]]) {
    if (box.checked !== consentOf(before, key)) changes[key] = box.checked;
  }
  if (Object.keys(changes).length === 0) { setNote(ui.profileNote, "Nothing changed, so nothing to save.", "ok"); return; }
  setNote(ui.profileNote, "Saving…");
  const answer = await api("/api/profile", changes, "PATCH");
  if (answer.status === 401) { signedOutElsewhere(); return; }
  if (!answer.ok) {
    const why = detailOf(answer.body, "Please try again.");
    setNote(ui.profileNote, why.startsWith("timezone:")
      ? "Not saved. I don't know that time zone. Try one like Europe/Berlin or America/New_York."
      : `Not saved. ${why}`, "error");
    return;
  }
  renderProfile(answer.body);
  setNote(ui.profileNote, "Saved. I'll use this from now on.", "ok");
  loadAudit();
}

// ---- the person's data: download and forget -----------------------------------------------

const fileSafe = (name) => String(name || "").replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[.-]+/, "") || "me";

async function downloadEverything() {
  setNote(ui.downloadNote, "Getting everything together…");
  const answer = await api("/api/data");
  if (answer.status === 401) { signedOutElsewhere(); return; }
  if (!answer.ok) { setNote(ui.downloadNote, detailOf(answer.body, "The download didn't work. Please try again."), "error"); return; }
  const blob = new Blob([JSON.stringify(answer.body, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  const file = `sam2voice-${fileSafe(memory.user)}.json`;
  link.href = url;
  link.download = file;
  link.hidden = true;
  link.dataset.testid = "download-link";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  setNote(ui.downloadNote, `Saved as ${file} (look in your downloads).`, "ok");
  loadAudit();
}

function openForget() {
  ui.forgetForm.hidden = false;
  ui.forgetStart.hidden = true;
  setNote(ui.forgetNote, "");
  ui.forgetName.focus();
}

function closeForget() {
  ui.forgetForm.hidden = true;
  ui.forgetStart.hidden = false;
  ui.forgetName.value = "";
}

async function forgetMe() {
  const confirm = ui.forgetName.value.trim();
  if (!confirm) { setNote(ui.forgetNote, "Please type your name first. Nothing was deleted.", "error"); ui.forgetName.focus(); return; }
  setNote(ui.forgetNote, "Deleting…");
  setForgetting(true);
  const answer = await api("/api/data", { confirm }, "DELETE");
  if (!answer.ok) {
    setForgetting(false);
    if (answer.status === 401) { signedOutElsewhere(); return; }
    setNote(ui.forgetNote, detailOf(answer.body, "Nothing was deleted. Please try again."), "error");
    ui.forgetName.focus();
    return;
  }
  forgetKnownAccount();
  leaveSession();
  setForgetting(false);
  clearError();
  showSignin("Everything about you was deleted: what I remembered, your conversations and your account. "
    + "You can make a new account whenever you like.");
}

/** The section's controls: opening it loads fresh data. */
export function wireMemories() {
  ui.memory.addEventListener("toggle", () => { if (ui.memory.open) loadMemories(); });
  ui.memoryRefresh.addEventListener("click", loadMemories);
  ui.profileForm.addEventListener("input", () => { memory.profileDirty = true; });
  ui.profileForm.addEventListener("submit", (event) => { event.preventDefault(); saveProfile(); });
  ui.download.addEventListener("click", downloadEverything);
  ui.forgetStart.addEventListener("click", openForget);
  ui.forgetCancel.addEventListener("click", () => { closeForget(); setNote(ui.forgetNote, ""); ui.forgetStart.focus(); });
  ui.forgetForm.addEventListener("submit", (event) => { event.preventDefault(); forgetMe(); });
}
