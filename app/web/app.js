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

  /** A JSON request to this page's server: {ok, status, body}; never throws. */
  async function api(path, body) {
    let response;
    try {
      response = await fetch(path, {
        method: body === undefined ? "GET" : "POST", credentials: "same-origin",
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

  function showSignin() {
    ui.session.hidden = true;
    ui.signin.hidden = false;
    setMode(localStorage.getItem(KNOWN_KEY) ? "signin" : "signup");
    if (!ui.signin.contains(document.activeElement)) ui.name.focus(); // never pull focus from a field being typed in
  }

  function showSession(user) {
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
      case "error": showError(frame.message || "Something went wrong."); break;
      case "ended": onEnded(frame); break;
      default: break; // "tool" and future frames: kept in stats.messages only.
    }
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
    if (event.code === 4401) {
      showError("Please sign in again: you were signed out, or your sign-in has expired.");
      showSignin();
      return;
    }
    if (event.code === 4409) {
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
    if (memories.length === 0 && !frame.suggested) return;
    const details = document.createElement("details");
    details.className = "memories";
    details.dataset.testid = "memories";
    const summary = document.createElement("summary");
    summary.dataset.testid = "memories-summary";
    summary.textContent = `Drew on ${memories.length} ${memories.length === 1 ? "memory" : "memories"}`;
    details.append(summary);
    if (frame.suggested) {
      const p = document.createElement("p");
      p.textContent = `Suggested: ${humanize(frame.suggested)}`;
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
