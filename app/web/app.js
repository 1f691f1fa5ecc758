/*
 * sam2voice voice page. Speaks docs/voice-protocol.md over one websocket:
 * sign up / sign in (passkey first, password as the fallback; the server sets an httpOnly session
 * cookie) -> GET /ws (the cookie says who it is) -> hello -> PCM16 16 kHz up, PCM16 24 kHz down.
 * Plain script, no build step, no network beyond this page's own server.
 */
"use strict";

(() => {
  const KNOWN_KEY = "sam2voice.known"; // this browser signed in before: offer "sign in" first, not "sign up"
  const INPUT_RATE = 16000;
  const OUTPUT_RATE = 24000;
  const LOG_LIMIT = 200;
  const QUIET_WHILE = "I closed the connection after a quiet while. Press Connect again.";
  const MAX_BUFFERED_BYTES = 320000; // ~10 s of audio: beyond that the link is stuck; drop, don't hoard.
  const WORKLET_URL = new URL("capture-worklet.js", document.currentScript.src).href;

  /** Test hook read by tests/browser.py; counters only, never used for behaviour. */
  const stats = {
    audioChunksPlayed: 0, audioSamplesReceived: 0, messages: [], sent: [],
    audioChunksScheduled: 0, audioSourcesActive: 0, audioChunksSent: 0, audioBytesSent: 0, interruptions: 0,
    captureSampleRate: null,
  };
  window.sam2voiceStats = stats;
  /** Test hook: RMS of what the page is playing right now (0 = silent). */
  window.sam2voiceOutputLevel = () => {
    if (!player.meter) return 0;
    const samples = new Float32Array(player.meter.fftSize);
    player.meter.getFloatTimeDomainData(samples);
    return Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
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

  let ws = null;
  let ready = false;
  let ended = false;
  let capture = null; // {ctx, stream, node, sent}
  let opening = false;
  const player = { ctx: null, out: null, meter: null, nextTime: 0, sources: new Set() };
  const turns = new Map(); // turn number -> {li, user, assistant, memories}
  let pendingTyped = null; // a typed line shown before the server numbers its turn
  let checkin = null;
  let checkinTimer = null;
  let forgetting = false; // "forget me" is under way: the server closing the socket is expected
  const memory = { seq: 0, user: null, profile: null, profileDirty: false }; // the "What I remember" section

  const remember = (list, item) => { list.push(item); if (list.length > LOG_LIMIT) list.shift(); };
  const humanize = (name) => String(name || "").replace(/_/g, " ");

  // ---- errors and status ------------------------------------------------------------------

  function showError(message) {
    ui.errorText.textContent = message;
    ui.error.hidden = false;
  }
  function clearError() {
    ui.error.hidden = true;
    ui.errorText.textContent = "";
  }
  function setStatus(text, state) {
    ui.status.textContent = text;
    ui.status.dataset.state = state || "";
  }

  // ---- accounts: sign up / sign in --------------------------------------------------------

  /** A JSON request to this page's server: {ok, status, body}; never throws. `method` defaults to
   * GET without a body and POST with one (PATCH and DELETE are asked for by name). */
  async function api(path, body, method) {
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
  function detailOf(body, fallback) {
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail) && body.detail[0]) {
      const first = body.detail[0];
      const field = Array.isArray(first.loc) ? first.loc[first.loc.length - 1] : "";
      return field ? `${field}: ${first.msg}` : String(first.msg);
    }
    return fallback;
  }

  function mode() { return ui.modeSignin.checked ? "signin" : "signup"; }

  function setMode(which) {
    ui.modeSignup.checked = which === "signup";
    ui.modeSignin.checked = which === "signin";
    ui.signinSubmit.textContent = which === "signup" ? "Create my account with a password" : "Sign in with password";
    ui.password.autocomplete = which === "signup" ? "new-password" : "current-password";
    ui.passkey.textContent = which === "signup" ? "Use a passkey (recommended)" : "Use a passkey";
  }

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

  function leaveSession() {
    stopTalking(false);
    dropSocket();
    setConnected(false);
  }

  /** The sign-in screen; `note` (optional) is said there calmly, e.g. after "forget me". */
  function showSignin(note) {
    resetMemory();
    ui.signinNote.textContent = note || "";
    ui.signinNote.hidden = !note;
    ui.session.hidden = true;
    ui.signin.hidden = false;
    setMode(localStorage.getItem(KNOWN_KEY) ? "signin" : "signup");
    if (!ui.signin.contains(document.activeElement)) ui.name.focus(); // never pull focus from a field being typed in
  }

  function showSession(user) {
    resetMemory();
    memory.user = user;
    ui.signinNote.hidden = true;
    ui.who.textContent = user;
    ui.signin.hidden = true;
    ui.session.hidden = false;
  }

  // ---- the websocket ----------------------------------------------------------------------

  function setConnected(isReady) {
    ready = isReady;
    for (const el of [ui.talk, ui.done, ui.typeText, ui.typeSend, ui.end, ui.helped, ui.notHelped]) {
      el.disabled = !isReady;
    }
  }

  function connect() {
    dropSocket();
    ended = false;
    ui.reconnect.hidden = true;
    ui.reflectionBox.hidden = true;
    setStatus("Connecting…", "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${scheme}//${location.host}/ws`); // the session cookie goes with it
    ws.binaryType = "arraybuffer";
    ws.onopen = () => sendJson({ type: "hello", sample_rate: INPUT_RATE, format: "pcm16" });
    ws.onmessage = (event) => {
      if (typeof event.data === "string") onFrame(event.data);
      else playChunk(event.data);
    };
    ws.onclose = onClose;
  }

  /** Closes the current socket without treating the close as a problem. */
  function dropSocket() {
    if (!ws) return;
    const old = ws;
    ws = null;
    old.close(1000);
  }

  function sendJson(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    remember(stats.sent, frame);
    return true;
  }

  function sendAudio(buffer) {
    if (!ready || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) return;
    ws.send(buffer);
    stats.audioChunksSent += 1;
    stats.audioBytesSent += buffer.byteLength;
    if (capture) capture.sent += 1;
  }

  function onFrame(text) {
    let frame;
    try { frame = JSON.parse(text); } catch { return; }
    remember(stats.messages, frame);
    switch (frame.type) {
      case "ready":
        setConnected(true);
        clearError();
        setStatus("Ready. Press Start talking, or type below.", "ready");
        ui.talk.focus();
        break;
      case "transcript": showLine(frame); break;
      case "memory": showMemories(frame); break;
      case "plan": showPlan(frame); break;
      case "feedback":
        ui.feedbackNote.textContent = frame.settled
          ? (frame.helped ? "Thanks! I'll remember that helped." : "Thanks for telling me. I'll try something else next time.")
          : "Thanks! There was nothing to rate just now.";
        break;
      case "status": setStatus(frame.text || humanize(frame.state), frame.state); break;
      case "interrupted":
        stats.interruptions += 1;
        flushPlayback();
        break;
      case "error": onError(frame); break;
      case "ended": onEnded(frame); break;
      default: break; // "tool" and future frames: kept in stats.messages only.
    }
  }

  /** Kind words for the error codes a person can run into (docs/voice-protocol.md); the server's own
   * message for the rest. */
  const ERROR_WORDS = {
    busy: "I'm still answering your last message. Send this one again when I've replied.",
    rate_limited: "That was a lot at once, so I missed some of it. Give me a moment, then go on.",
    bad_frame: "A bit of what this page sent got garbled, so I skipped it. You can just go on.",
    hello_timeout: "The connection didn't start in time, so I closed it. Press Connect again.",
    idle_timeout: QUIET_WHILE,
  };

  function onError(frame) {
    if (forgetting && frame.code === "signed_out") return; // expected: "forget me" signs every device out
    showError(ERROR_WORDS[frame.code] || frame.message || "Something went wrong.");
  }

  function onEnded(frame) {
    ended = true;
    setConnected(false);
    stopTalking(false);
    setStatus("Session ended.", "ended");
    ui.reflection.textContent = frame.reflection || "Thanks for talking today.";
    ui.reflectionBox.hidden = false;
    ui.reconnect.textContent = "Start another session";
    ui.reconnect.hidden = false;
  }

  /** Explains a closed socket in plain words; codes come from the protocol's error table. */
  function onClose(event) {
    if (event.target !== ws) return; // an old socket we already let go of
    ws = null;
    setConnected(false);
    stopTalking(false);
    if (ended) return; // a normal goodbye: let the last words finish playing
    flushPlayback();
    ui.reconnect.textContent = "Connect again";
    if (forgetting) return; // "forget me" closed it; the sign-in screen comes next
    if (event.code === 4401) {
      showError("Please sign in again: you were signed out, or your sign-in has expired.");
      showSignin();
      return;
    }
    if (event.code === 4408) {
      showError(QUIET_WHILE); // idle or handshake timeout: nothing is wrong
    } else if (event.code === 4409) {
      showError("You opened sam2voice somewhere else, so this page stopped. Use the other one, or press Connect again.");
    } else if (event.code === 1011) {
      showError("The voice service stopped and could not restart. What you did so far was saved. Press Connect again.");
    } else {
      showError("The connection to sam2voice was lost. Press Connect again.");
    }
    setStatus("Not connected.", "closed");
    ui.reconnect.hidden = false;
  }

  // ---- the microphone ---------------------------------------------------------------------

  async function startTalking() {
    // A second press while the microphone opens would open it twice. (Not `disabled`: that
    // would drop keyboard focus from the button.)
    if (opening) return;
    opening = true;
    try {
      await openMicrophone();
    } finally {
      opening = false;
    }
  }

  async function openMicrophone() {
    unlockPlayback();
    clearError();
    if (!window.isSecureContext || !navigator.mediaDevices) {
      // Browsers only open the microphone on https or localhost pages.
      showError("The microphone only works when this page is opened at localhost or over https. You can type instead.");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      showError("I can't hear you: the microphone is blocked or missing. You can type instead.");
      return;
    }
    let ctx;
    try { ctx = new AudioContext({ sampleRate: INPUT_RATE }); } catch { ctx = new AudioContext(); }
    try {
      await ctx.audioWorklet.addModule(WORKLET_URL);
    } catch (err) {
      stream.getTracks().forEach((track) => track.stop());
      ctx.close();
      showError("This browser can't send your voice. You can type instead.");
      return;
    }
    if (!ready) { // the connection dropped while the browser was opening the microphone
      stream.getTracks().forEach((track) => track.stop());
      ctx.close();
      return;
    }
    const node = new AudioWorkletNode(ctx, "pcm-capture", { channelCount: 1, channelCountMode: "explicit" });
    node.port.onmessage = (event) => sendAudio(event.data);
    ctx.createMediaStreamSource(stream).connect(node);
    // Connected to the output so the browser keeps pulling it; the worklet writes silence there.
    node.connect(ctx.destination);
    capture = { ctx, stream, node, sent: 0 };
    stats.captureSampleRate = ctx.sampleRate;
    ui.talk.textContent = "Stop talking";
    ui.talk.setAttribute("aria-pressed", "true");
    setStatus("Listening. Talk whenever you're ready.", "listening");
  }

  /** Turns the microphone off; by default also tells the server the utterance is over. */
  function stopTalking(sendEnd = true) {
    if (!capture) return;
    const { ctx, stream, node, sent } = capture;
    capture = null;
    node.port.onmessage = null;
    stream.getTracks().forEach((track) => track.stop());
    ctx.close();
    ui.talk.textContent = "Start talking";
    ui.talk.setAttribute("aria-pressed", "false");
    if (ui.status.dataset.state === "listening") setStatus("Microphone off. Press Start talking when you're ready.", "idle");
    if (sendEnd && sent > 0) sendJson({ type: "end_of_speech" });
  }

  // ---- playback ---------------------------------------------------------------------------

  function unlockPlayback() {
    if (!player.ctx) {
      try { player.ctx = new AudioContext({ sampleRate: OUTPUT_RATE }); } catch { player.ctx = new AudioContext(); }
      // All voice goes through one node, with a meter beside the speakers so tests can hear silence.
      player.out = player.ctx.createGain();
      player.meter = player.ctx.createAnalyser();
      player.out.connect(player.ctx.destination);
      player.out.connect(player.meter);
    }
    if (player.ctx.state === "suspended") player.ctx.resume();
    return player.ctx;
  }

  function playChunk(arrayBuffer) {
    const samples = arrayBuffer.byteLength >> 1;
    if (samples === 0) return;
    stats.audioSamplesReceived += samples;
    const ctx = unlockPlayback();
    // A buffer tagged 24 kHz plays correctly even if the context runs at another rate.
    const buffer = ctx.createBuffer(1, samples, OUTPUT_RATE);
    const channel = buffer.getChannelData(0);
    const view = new DataView(arrayBuffer);
    for (let i = 0; i < samples; i++) channel[i] = view.getInt16(2 * i, true) / 32768;
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(player.out);
    // Back to back; after a gap, restart a little ahead of now so the first chunk isn't clipped.
    const startAt = Math.max(player.nextTime, ctx.currentTime + 0.05);
    source.start(startAt);
    player.nextTime = startAt + buffer.duration;
    player.sources.add(source);
    stats.audioChunksScheduled += 1;
    stats.audioSourcesActive = player.sources.size;
    source.onended = () => {
      // Only chunks that finished on their own count as played; flushed ones were removed first.
      if (player.sources.delete(source)) stats.audioChunksPlayed += 1;
      stats.audioSourcesActive = player.sources.size;
    };
  }

  function flushPlayback() {
    const stopping = [...player.sources];
    player.sources.clear();
    for (const source of stopping) {
      try { source.stop(); } catch { /* never started: nothing to stop */ }
      source.disconnect();
    }
    player.nextTime = 0;
    stats.audioSourcesActive = 0;
  }

  // ---- the transcript ---------------------------------------------------------------------

  function makeLine(role) {
    const p = document.createElement("p");
    p.className = `line ${role}`;
    p.dataset.testid = `line-${role}`;
    p.dataset.role = role;
    const who = document.createElement("span");
    who.className = "who-said";
    who.textContent = role === "user" ? "You:" : "Companion:";
    const words = document.createElement("span");
    words.className = "words";
    p.append(who, " ", words); // a real space, so copied and spoken text reads "You: ..."
    p.hidden = true;
    return p;
  }

  function newEntry() {
    const li = document.createElement("li");
    li.dataset.testid = "turn";
    const entry = { li, user: makeLine("user"), assistant: makeLine("assistant"), memories: null };
    li.append(entry.user, entry.assistant);
    ui.transcriptEmpty.hidden = true;
    return entry;
  }

  /** The entry for a turn number, created in order (turns may arrive out of order). */
  function entryFor(turn, frame) {
    if (turns.has(turn)) return turns.get(turn);
    let entry;
    // A new turn while a typed line waits is that line's turn, unless it is someone else's speech.
    const otherSpeech = frame.type === "transcript" && frame.role === "user" && frame.text.trim() !== pendingTyped?.text;
    if (pendingTyped && !otherSpeech) {
      entry = pendingTyped.entry; // the server numbered the turn we typed
      pendingTyped = null;
    } else {
      entry = newEntry();
    }
    entry.li.dataset.turn = String(turn);
    turns.set(turn, entry);
    const later = [...ui.transcript.children].find((li) => li.dataset.turn && Number(li.dataset.turn) > turn);
    ui.transcript.insertBefore(entry.li, later || (pendingTyped ? pendingTyped.entry.li : null));
    return entry;
  }

  function setWords(line, text, final) {
    line.querySelector(".words").textContent = text;
    line.hidden = !text;
    line.classList.toggle("in-progress", !final);
    line.dataset.final = String(Boolean(final));
  }

  function showLine(frame) {
    if (typeof frame.text !== "string" || !Number.isFinite(frame.turn)) return;
    const role = frame.role === "user" ? "user" : "assistant";
    const line = entryFor(frame.turn, frame)[role];
    setWords(line, frame.text, frame.final); // whole text, not a delta: replace
    if (frame.final && frame.text) {
      ui.announcer.textContent = `${role === "user" ? "You" : "Companion"} said: ${frame.text}`;
    }
  }

  function sendTyped(text) {
    if (!sendJson({ type: "text", text })) return false;
    const entry = newEntry();
    setWords(entry.user, text, true);
    ui.transcript.append(entry.li);
    pendingTyped = { text: text.trim(), entry };
    return true;
  }

  function showMemories(frame) {
    if (!Number.isFinite(frame.turn)) return;
    const entry = entryFor(frame.turn, frame);
    if (entry.memories) entry.memories.remove();
    entry.memories = null;
    const memories = Array.isArray(frame.memories) ? frame.memories : [];
    const why = typeof frame.why === "string" ? frame.why.trim() : "";
    if (memories.length === 0 && !frame.suggested && !why) return;
    const details = document.createElement("details");
    details.className = "memories";
    details.dataset.testid = "memories";
    const summary = document.createElement("summary");
    summary.dataset.testid = "memories-summary";
    summary.textContent = `Drew on ${memories.length} ${memories.length === 1 ? "memory" : "memories"}`;
    details.append(summary);
    if (frame.suggested || why) {  // "Suggested: Break — helped you 4 of 5 times when you felt like this"
      const p = document.createElement("p");
      p.dataset.testid = "memories-why";
      const suggested = frame.suggested ? `Suggested: ${humanize(frame.suggested)}` : "";
      p.textContent = suggested && why ? `${suggested} — ${why}` : (suggested || why);
      details.append(p);
    }
    const list = document.createElement("ul");
    for (const memory of memories) {
      const li = document.createElement("li");
      li.dataset.testid = "memory";
      const tool = document.createElement("strong");
      tool.textContent = humanize(memory.tool) || "a past moment";
      li.append(tool, ` (outcome: ${humanize(memory.outcome) || "unknown"})`);
      if (memory.said) li.append(`: “${memory.said}”`);
      list.append(li);
    }
    details.append(list);
    entry.memories = details;
    entry.li.append(details);
  }

  // ---- the plan ---------------------------------------------------------------------------

  function showPlan(frame) {
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

  // ---- what I remember about you ----------------------------------------------------------
  // Everything here is the person's own words: always textContent, never parsed as HTML.

  /** Outcomes a person can pick, in their words (memories/ranking.py Outcome). */
  const OUTCOME_CHOICES = [
    ["task_completed", "It helped: I finished"],
    ["task_progress", "It helped: I made progress"],
    ["re_engaged", "It helped me get back to it"],
    ["distracted", "It didn't help: I got distracted"],
    ["abandoned", "It didn't help: I stopped"],
    ["unknown", "I'm not sure"],
  ];
  const OUTCOME_WORDS = { ...Object.fromEntries(OUTCOME_CHOICES), pending: "Not known yet" };
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
  const DIAGNOSIS_WORDS = { ADHD: "ADHD", AUTISM: "autism", BOTH: "ADHD and autism" };
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

  function setNote(el, text, state) {
    el.textContent = text;
    el.dataset.state = state || "";
  }

  /** Closed and empty: nothing of one person stays on the page for the next. */
  function resetMemory() {
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
    renderMemories(shown.body);
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

  function renderMemories(data) {
    if (!memory.profileDirty) renderProfile(data.profile);
    renderState(data.current_state);
    fillList(ui.memoryReflections, data.reflections, (r) => {
      const li = node("li", null, "memory-item");
      li.dataset.testid = "memory-reflection";
      li.append(node("span", r.insight), " ", node("span", null, "meta"));
      li.lastChild.append("(", timeEl(r.created_at), ")");
      return li;
    }, "Nothing yet. I learn this from how my suggestions go.");
    fillList(ui.memoryInterventions, data.interventions, interventionItem, "Nothing yet.");
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

  const capitalize = (text) => (text ? text[0].toUpperCase() + text.slice(1) : text);

  // What each consent is when the profile does not say (no profile stored yet): as memories/profile.py.
  const CONSENT_DEFAULTS = { consent_diagnosis_in_prompts: false, consent_pooled_learning: true };
  const consentOf = (profile, key) =>
    (profile && typeof profile[key] === "boolean" ? profile[key] : CONSENT_DEFAULTS[key]);

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

  function interventionItem(item) {
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
    change.addEventListener("click", () => correctOutcome(item.id, select.value));
    fix.append(label, select, change);
    li.append(meta, said, suggested, went, fix);
    return li;
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

  function renderAudit(events) {
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
    forgetting = true;
    const answer = await api("/api/data", { confirm }, "DELETE");
    if (!answer.ok) {
      forgetting = false;
      if (answer.status === 401) { signedOutElsewhere(); return; }
      setNote(ui.forgetNote, detailOf(answer.body, "Nothing was deleted. Please try again."), "error");
      ui.forgetName.focus();
      return;
    }
    localStorage.removeItem(KNOWN_KEY); // the account is gone: next time starts with "make my account"
    ui.name.value = ""; // nor does its name stay on the form
    leaveSession();
    forgetting = false;
    clearError();
    showSignin("Everything about you was deleted: what I remembered, your conversations and your account. "
      + "You can make a new account whenever you like.");
  }

  // ---- wiring -----------------------------------------------------------------------------

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
  ui.errorDismiss.addEventListener("click", clearError);
  ui.talk.addEventListener("click", () => (capture ? stopTalking() : startTalking()));
  ui.done.addEventListener("click", () => {
    if (sendJson({ type: "end_of_speech" })) setStatus("Got it. Thinking about what you said…", "thinking");
  });
  ui.typeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.typeText.value.trim();
    if (!text) return;
    if (sendTyped(text.slice(0, 2000))) ui.typeText.value = "";
  });
  ui.typeText.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.typeForm.requestSubmit();
    }
  });
  ui.end.addEventListener("click", () => {
    stopTalking();
    if (sendJson({ type: "end" })) {
      setConnected(false);
      setStatus("Wrapping up. One moment…", "ending");
    }
  });
  ui.reconnect.addEventListener("click", () => { clearError(); connect(); });
  ui.memory.addEventListener("toggle", () => { if (ui.memory.open) loadMemories(); });
  ui.memoryRefresh.addEventListener("click", loadMemories);
  ui.profileForm.addEventListener("input", () => { memory.profileDirty = true; });
  ui.profileForm.addEventListener("submit", (event) => { event.preventDefault(); saveProfile(); });
  ui.download.addEventListener("click", downloadEverything);
  ui.forgetStart.addEventListener("click", openForget);
  ui.forgetCancel.addEventListener("click", () => { closeForget(); setNote(ui.forgetNote, ""); ui.forgetStart.focus(); });
  ui.forgetForm.addEventListener("submit", (event) => { event.preventDefault(); forgetMe(); });
  ui.helped.addEventListener("click", () => sendJson({ type: "feedback", helped: true }));
  ui.notHelped.addEventListener("click", () => sendJson({ type: "feedback", helped: false }));

  // Signed in already (the session cookie survives reloads)? Then connect; else offer sign-up / sign-in.
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
})();
