/*
 * sam2voice voice page. Speaks docs/voice-protocol.md over one websocket:
 * sign in (POST /api/session) -> GET /ws?token=... -> hello -> PCM16 16 kHz up, PCM16 24 kHz down.
 * Plain script, no build step, no network beyond this page's own server.
 */
"use strict";

(() => {
  const TOKEN_KEY = "sam2voice.token";
  const USER_KEY = "sam2voice.user";
  const EXPIRES_KEY = "sam2voice.expires_at";
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
    signin: $("signin"), signinForm: $("signin-form"), name: $("name"),
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

  // ---- signing in -------------------------------------------------------------------------

  async function signIn(name) {
    clearError();
    let response;
    try {
      response = await fetch("/api/session", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }),
      });
    } catch (err) {
      showError("I couldn't reach sam2voice. Check that it is running, then try again.");
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : null;
      showError(detail || "That name didn't work. Use 1 to 128 characters, with no spaces at the start or end.");
      ui.name.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, body.token);
    sessionStorage.setItem(USER_KEY, body.user);
    sessionStorage.setItem(EXPIRES_KEY, String(body.expires_at || ""));
    showSession(body.user);
    connect();
  }

  function forgetSignIn() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    sessionStorage.removeItem(EXPIRES_KEY);
  }

  function showSignin() {
    ui.session.hidden = true;
    ui.signin.hidden = false;
    ui.name.focus();
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
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return showSignin();
    dropSocket();
    ended = false;
    ui.reconnect.hidden = true;
    ui.reflectionBox.hidden = true;
    setStatus("Connecting…", "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${scheme}//${location.host}/ws?token=${encodeURIComponent(token)}`);
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
      forgetSignIn();
      showError("Please sign in again: your sign-in has expired or is not valid.");
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
    const name = ui.name.value.trim();
    if (!name) {
      showError("Please type your name first.");
      ui.name.focus();
      return;
    }
    signIn(name);
  });
  ui.signout.addEventListener("click", () => {
    stopTalking(false);
    dropSocket();
    setConnected(false);
    forgetSignIn();
    clearError();
    showSignin();
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

  // A reload in the same tab keeps the sign-in (sessionStorage), unless it has run out.
  const expiresAt = Number(sessionStorage.getItem(EXPIRES_KEY));
  if (sessionStorage.getItem(TOKEN_KEY) && !(expiresAt && expiresAt < Date.now() / 1000)) {
    showSession(sessionStorage.getItem(USER_KEY) || "");
    connect();
  } else {
    forgetSignIn();
    showSignin();
  }
})();
