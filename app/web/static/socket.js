/*
 * The websocket of docs/voice-protocol.md: connecting (the session cookie says who it is) and
 * connecting again, hello, the frames sent and received (text frames routed to the transcript,
 * plan and status; binary frames to playback), the buttons that need a live connection, and a
 * closed socket explained in plain words.
 */
import { INPUT_RATE, flushPlayback, playChunk, stopTalking } from "./audio.js";
import { clearError, humanize, remember, setStatus, showError, stats, ui } from "./page.js";
import { showPlan } from "./plan.js";
import { showLine, showMemories } from "./transcript.js";

const MAX_BUFFERED_BYTES = 320000; // ~10 s of audio: beyond that the link is stuck; drop, don't hoard.
const QUIET_WHILE = "I closed the connection after a quiet while. Press Connect again.";

let ws = null;
let ready = false;
let ended = false;
let forgetting = false; // "forget me" is under way: the server closing the socket is expected
let signedOut = () => {}; // what the page does when the server says the sign-in is gone (main.js sets it)

/** What to do when the server closes the socket because the person is no longer signed in. */
export function onSignedOut(handler) { signedOut = handler; }

/** "Forget me" is (or is no longer) under way: its sign-out and close are expected, not errors. */
export function setForgetting(on) { forgetting = on; }

/** Enables the buttons that need a ready connection, or disables them. */
export function setConnected(isReady) {
  ready = isReady;
  for (const el of [ui.talk, ui.done, ui.typeText, ui.typeSend, ui.end, ui.helped, ui.notHelped]) {
    el.disabled = !isReady;
  }
}

/** Opens a new socket (closing any old one) and says hello. */
export function connect() {
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

/** Leaves the session on this page: microphone off, socket closed, buttons off. */
export function leaveSession() {
  stopTalking(false);
  dropSocket();
  setConnected(false);
}

/** Sends one JSON frame; false when there is no open socket. */
export function sendJson(frame) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(frame));
  remember(stats.sent, frame);
  return true;
}

function sendAudio(buffer) {
  if (!ready || !ws || ws.readyState !== WebSocket.OPEN) return false;
  if (ws.bufferedAmount > MAX_BUFFERED_BYTES) return false;
  ws.send(buffer);
  stats.audioChunksSent += 1;
  stats.audioBytesSent += buffer.byteLength;
  return true;
}

/** Where the microphone's audio goes (audio.js's startTalking). */
export const voiceLink = {
  isReady: () => ready,
  send: sendAudio,
  endOfSpeech: () => sendJson({ type: "end_of_speech" }),
};

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
    signedOut();
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
