/*
 * Accounts: the sign-in screen (sign up or sign in, passkey first and password as the fallback; the
 * server sets an httpOnly session cookie), switching between it and the session screen, and the
 * "Account and security" controls (sign out here or everywhere, add a passkey, change the password).
 */
import { unlockPlayback } from "./audio.js";
import { api, clearError, detailOf, showError, ui } from "./page.js";
import { connect, leaveSession } from "./socket.js";

const KNOWN_KEY = "sam2voice.known"; // this browser signed in before: offer "sign in" first, not "sign up"

let screenChanged = () => {}; // told the signed-in user (null on the sign-in screen); main.js sets it

/** What else to reset when the page switches screens; `handler(user)` gets null for the sign-in screen. */
export function onScreenChange(handler) { screenChanged = handler; }

function mode() { return ui.modeSignin.checked ? "signin" : "signup"; }

function setMode(which) {
  ui.modeSignup.checked = which === "signup";
  ui.modeSignin.checked = which === "signin";
  ui.signinSubmit.textContent = which === "signup" ? "Create my account with a password" : "Sign in with password";
  ui.password.autocomplete = which === "signup" ? "new-password" : "current-password";
  ui.passkey.textContent = which === "signup" ? "Use a passkey (recommended)" : "Use a passkey";
}

// ---- passkeys (WebAuthn) ------------------------------------------------------------------

/** WebAuthn refuses IP addresses: a passkey needs the page opened by name (localhost here). */
function passkeyAddressProblem() {
  if (!window.PublicKeyCredential || !navigator.credentials) return "This browser can't use passkeys. Use a password instead.";
  if (/^[0-9.]+$/.test(location.hostname) || location.hostname.startsWith("[")) {
    const loopback = location.hostname === "127.0.0.1" || location.hostname === "[::1]";
    const there = loopback ? `${location.protocol}//localhost${location.port ? ":" + location.port : ""}/` : "this site's name";
    return `Passkeys work when this page is opened at ${there}. Use a password here, or open that address.`;
  }
  return null;
}

const fromB64url = (text) => {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
};
const toB64url = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

function creationOptions(options) {
  if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(options);
  return { ...options, challenge: fromB64url(options.challenge), user: { ...options.user, id: fromB64url(options.user.id) },
    excludeCredentials: (options.excludeCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })) };
}

function requestOptions(options) {
  if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(options);
  return { ...options, challenge: fromB64url(options.challenge),
    allowCredentials: (options.allowCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })) };
}

function credentialJson(credential) {
  if (typeof credential.toJSON === "function") return credential.toJSON();
  const r = credential.response;
  const response = { clientDataJSON: toB64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64url(r.attestationObject);
    response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    response.authenticatorData = toB64url(r.authenticatorData);
    response.signature = toB64url(r.signature);
    response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
  }
  return { id: credential.id, rawId: toB64url(credential.rawId), type: credential.type, response,
    clientExtensionResults: credential.getClientExtensionResults() };
}

// ---- signing in ---------------------------------------------------------------------------

function signedIn(body) {
  localStorage.setItem(KNOWN_KEY, "1");
  ui.password.value = "";
  clearError();
  showSession(body.user);
  connect();
}

async function signInWithPassword() {
  clearError();
  const name = ui.name.value.trim();
  if (!name) { showError("Please type your name first."); ui.name.focus(); return; }
  if (!ui.password.value) { showError("Please type your password, or use a passkey."); ui.password.focus(); return; }
  const signup = mode() === "signup";
  const answer = await api(signup ? "/api/signup" : "/api/signin", { name, password: ui.password.value });
  if (!answer.ok) {
    showError(detailOf(answer.body, signup ? "That account couldn't be made. Please try again." : "That didn't work. Please try again."));
    (answer.status === 422 && signup ? ui.password : ui.name).focus();
    return;
  }
  signedIn(answer.body);
}

async function useAPasskey() {
  clearError();
  const problem = passkeyAddressProblem();
  if (problem) { showError(problem); return; }
  const signup = mode() === "signup";
  const name = ui.name.value.trim();
  if (signup && !name) { showError("Please type the name for your new account first."); ui.name.focus(); return; }
  const start = await api(signup ? "/api/passkey/register/options" : "/api/passkey/signin/options", signup ? { name } : {});
  if (!start.ok) { showError(detailOf(start.body, "Passkeys aren't working right now. Use a password instead.")); return; }
  let credential;
  try {
    credential = signup
      ? await navigator.credentials.create({ publicKey: creationOptions(start.body.options) })
      : await navigator.credentials.get({ publicKey: requestOptions(start.body.options) });
  } catch (err) {
    showError("The passkey step was cancelled or didn't work. Try again, or use a password.");
    return;
  }
  const finish = await api(signup ? "/api/passkey/register/verify" : "/api/passkey/signin/verify",
    { challenge_id: start.body.challenge_id, credential: credentialJson(credential) });
  if (!finish.ok) { showError(detailOf(finish.body, "That passkey didn't work here. Try again, or use a password.")); return; }
  signedIn(finish.body);
}

async function addPasskey() {
  ui.accountNote.textContent = "";
  const problem = passkeyAddressProblem();
  if (problem) { ui.accountNote.textContent = problem; return; }
  const start = await api("/api/passkey/register/options", {});
  if (!start.ok) { ui.accountNote.textContent = detailOf(start.body, "Couldn't start adding a passkey."); return; }
  let credential;
  try {
    credential = await navigator.credentials.create({ publicKey: creationOptions(start.body.options) });
  } catch (err) {
    ui.accountNote.textContent = "No passkey was added (the step was cancelled).";
    return;
  }
  const finish = await api("/api/passkey/register/verify",
    { challenge_id: start.body.challenge_id, credential: credentialJson(credential) });
  ui.accountNote.textContent = finish.ok ? "Passkey added. Next time you can sign in with it."
    : detailOf(finish.body, "That passkey couldn't be added.");
}

// ---- the two screens ----------------------------------------------------------------------

/** The sign-in screen; `note` (optional) is said there calmly, e.g. after "forget me". */
export function showSignin(note) {
  screenChanged(null);
  ui.signinNote.textContent = note || "";
  ui.signinNote.hidden = !note;
  ui.session.hidden = true;
  ui.signin.hidden = false;
  setMode(localStorage.getItem(KNOWN_KEY) ? "signin" : "signup");
  if (!ui.signin.contains(document.activeElement)) ui.name.focus(); // never pull focus from a field being typed in
}

function showSession(user) {
  screenChanged(user);
  ui.signinNote.hidden = true;
  ui.who.textContent = user;
  ui.signin.hidden = true;
  ui.session.hidden = false;
}

/** The account is gone: next time starts with "make my account", and its name leaves the form. */
export function forgetKnownAccount() {
  localStorage.removeItem(KNOWN_KEY);
  ui.name.value = "";
}

/** Signed in already (the session cookie survives reloads)? Then connect; else offer sign-up / sign-in. */
export function resumeOrSignIn() {
  setMode(localStorage.getItem(KNOWN_KEY) ? "signin" : "signup");
  api("/api/me").then((answer) => {
    document.body.dataset.auth = answer.ok ? "signed-in" : "signed-out"; // the page knows who it is now
    if (answer.ok) {
      showSession(answer.body.user);
      connect();
    } else {
      showSignin();
    }
  });
}

/** The sign-in form and the account controls. */
export function wireSignin() {
  ui.signinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    unlockPlayback(); // a click: the one moment browsers let a page start audio
    signInWithPassword();
  });
  ui.passkey.addEventListener("click", () => { unlockPlayback(); useAPasskey(); });
  ui.modeSignup.addEventListener("change", () => setMode("signup"));
  ui.modeSignin.addEventListener("change", () => setMode("signin"));
  ui.signout.addEventListener("click", async () => {
    leaveSession();
    await api("/api/signout", {});
    clearError();
    showSignin();
  });
  ui.signoutEverywhere.addEventListener("click", async () => {
    leaveSession();
    const answer = await api("/api/signout-everywhere", {});
    showSignin();
    if (answer.ok) {
      showError(`Signed out on every device (${answer.body.revoked} sign-ins ended). Sign in again to go on.`);
    }
  });
  ui.addPasskey.addEventListener("click", addPasskey);
  ui.passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    ui.accountNote.textContent = "";
    const answer = await api("/api/password",
      { current_password: ui.currentPassword.value, new_password: ui.newPassword.value });
    ui.currentPassword.value = "";
    ui.newPassword.value = "";
    ui.accountNote.textContent = answer.ok ? "Password changed. Other devices were signed out."
      : detailOf(answer.body, "The password was not changed.");
  });
}
