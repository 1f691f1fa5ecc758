/*
 * The ground every other module stands on: handles on the page's elements, the error banner and
 * the status line, JSON requests to this page's own server, and the test hook
 * window.sam2voiceStats. Imports nothing.
 */

const LOG_LIMIT = 200;

/** Test hook read by tests/browser.py; counters only, never used for behaviour. */
export const stats = {
  audioChunksPlayed: 0, audioSamplesReceived: 0, messages: [], sent: [],
  audioChunksScheduled: 0, audioSourcesActive: 0, audioChunksSent: 0, audioBytesSent: 0, interruptions: 0,
  captureSampleRate: null,
};
window.sam2voiceStats = stats;

const $ = (id) => document.getElementById(id);
export const ui = {
  error: $("error"), errorText: $("error-text"), errorDismiss: $("error-dismiss"),
  signin: $("signin"), signinForm: $("signin-form"), name: $("name"), password: $("password"),
  modeSignup: $("mode-signup"), modeSignin: $("mode-signin"), passkey: $("passkey"), passkeyNote: $("passkey-note"),
  signinSubmit: $("signin-submit"), signoutEverywhere: $("signout-everywhere"), addPasskey: $("add-passkey"),
  accountNote: $("account-note"), passwordForm: $("password-form"), currentPassword: $("current-password"),
  newPassword: $("new-password"),
  session: $("session"), who: $("who"), signout: $("signout"), status: $("status"),
  talk: $("talk"), done: $("done"), step: $("step"), checkin: $("checkin"),
  plan: $("plan"), planTitle: $("plan-title"), helped: $("helped"), notHelped: $("not-helped"),
  feedbackNote: $("feedback-note"),
  transcript: $("transcript"), transcriptEmpty: $("transcript-empty"), announcer: $("announcer"),
  typeForm: $("type-form"), typeText: $("type-text"), typeSend: $("type-send"),
  end: $("end"), reconnect: $("reconnect"), reflectionBox: $("reflection-box"), reflection: $("reflection"),
  signinNote: $("signin-note"),
  memory: $("memory"), memoryRefresh: $("memory-refresh"), memoryNote: $("memory-note"),
  profileForm: $("profile-form"), profileName: $("profile-name"), profileTimezone: $("profile-timezone"),
  consentDiagnosis: $("consent-diagnosis"), consentPooled: $("consent-pooled"), profileNote: $("profile-note"),
  profileDiagnosis: $("profile-diagnosis"),
  memoryState: $("memory-state"), memoryReflections: $("memory-reflections"),
  memoryInterventions: $("memory-interventions"), outcomeNote: $("outcome-note"), memoryRates: $("memory-rates"),
  memoryPlan: $("memory-plan"), memoryScheduled: $("memory-scheduled"), memorySafety: $("memory-safety"),
  download: $("download"), downloadNote: $("download-note"),
  forgetStart: $("forget-start"), forgetForm: $("forget-form"), forgetName: $("forget-name"),
  forgetCancel: $("forget-cancel"), forgetNote: $("forget-note"), auditList: $("audit-list"),
};

/** Appends to a test-hook log, keeping only the newest LOG_LIMIT items. */
export const remember = (list, item) => { list.push(item); if (list.length > LOG_LIMIT) list.shift(); };
/** A server name like "task_completed" in words: "task completed". */
export const humanize = (name) => String(name || "").replace(/_/g, " ");

// ---- errors and status ------------------------------------------------------------------

export function showError(message) {
  ui.errorText.textContent = message;
  ui.error.hidden = false;
}

export function clearError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

export function setStatus(text, state) {
  ui.status.textContent = text;
  ui.status.dataset.state = state || "";
}

// ---- requests to this page's server -------------------------------------------------------

/** A JSON request to this page's server: {ok, status, body}; never throws. `method` defaults to
 * GET without a body and POST with one (PATCH and DELETE are asked for by name). */
export async function api(path, body, method) {
  let response;
  try {
    response = await fetch(path, {
      method: method || (body === undefined ? "GET" : "POST"), credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    return { ok: false, status: 0, body: { detail: "I couldn't reach sam2voice. Check that it is running, then try again." } };
  }
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, body: data };
}

/** The server's message, in its words (422 lists name the field). */
export function detailOf(body, fallback) {
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail) && body.detail[0]) {
    const first = body.detail[0];
    const field = Array.isArray(first.loc) ? first.loc[first.loc.length - 1] : "";
    return field ? `${field}: ${first.msg}` : String(first.msg);
  }
  return fallback;
}
