/*
 * sam2voice voice page, the entry point. Speaks docs/voice-protocol.md over one websocket:
 * sign up / sign in (passkey first, password as the fallback; the server sets an httpOnly session
 * cookie) -> GET /ws (the cookie says who it is) -> hello -> PCM16 16 kHz up, PCM16 24 kHz down.
 * Native ES modules, no build step, no network beyond this page's own server.
 *
 * This file wires the modules together and owns the talking controls that span them (talk, done,
 * type, feedback, end, connect again). Modules import only those below them, so there are no cycles:
 *   page.js <- audio.js, transcript.js, plan.js <- socket.js <- signin.js <- memories.js <- main.js
 *   page.js <- memory-lists.js <- memories.js
 * and the two calls that go upward (socket.js and signin.js telling what happened) are hooks set here.
 */
import { isTalking, startTalking, stopTalking } from "./audio.js";
import { resetMemory, wireMemories } from "./memories.js";
import { clearError, setStatus, ui } from "./page.js";
import { onScreenChange, resumeOrSignIn, showSignin, wireSignin } from "./signin.js";
import { connect, onSignedOut, sendJson, setConnected, voiceLink } from "./socket.js";
import { showTyped } from "./transcript.js";

onSignedOut(() => showSignin()); // the server closed the socket: the sign-in is gone
onScreenChange(resetMemory); // a new screen shows nothing of the person before

wireSignin();
wireMemories();

ui.errorDismiss.addEventListener("click", clearError);
ui.talk.addEventListener("click", () => (isTalking() ? stopTalking() : startTalking(voiceLink)));
ui.done.addEventListener("click", () => {
  if (sendJson({ type: "end_of_speech" })) setStatus("Got it. Thinking about what you said…", "thinking");
});
ui.typeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.typeText.value.trim().slice(0, 2000);
  if (!text) return;
  if (sendJson({ type: "text", text })) {
    showTyped(text);
    ui.typeText.value = "";
  }
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

resumeOrSignIn();
