/*
 * Sound: the microphone (PCM16 at 16 kHz through the AudioWorklet in capture-worklet.js) with the
 * Start/Stop talking button, and playback of the companion's 24 kHz voice, with the test hook
 * window.sam2voiceOutputLevel. Where the captured audio goes is the caller's `link` (socket.js's
 * voiceLink): this module knows nothing of the websocket.
 */
import { clearError, setStatus, showError, stats, ui } from "./page.js";

export const INPUT_RATE = 16000;
const OUTPUT_RATE = 24000;
const WORKLET_URL = new URL("capture-worklet.js", import.meta.url).href;

let capture = null; // {ctx, stream, node, sent, link}
let opening = false;
const player = { ctx: null, out: null, meter: null, nextTime: 0, sources: new Set() };

/** Test hook: RMS of what the page is playing right now (0 = silent). */
window.sam2voiceOutputLevel = () => {
  if (!player.meter) return 0;
  const samples = new Float32Array(player.meter.fftSize);
  player.meter.getFloatTimeDomainData(samples);
  return Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
};

// ---- the microphone ---------------------------------------------------------------------

/** True while the microphone is open. */
export const isTalking = () => capture !== null;

/** Opens the microphone and streams it to `link`: {isReady(), send(buffer) -> sent?, endOfSpeech()}. */
export async function startTalking(link) {
  // A second press while the microphone opens would open it twice. (Not `disabled`: that
  // would drop keyboard focus from the button.)
  if (opening) return;
  opening = true;
  try {
    await openMicrophone(link);
  } finally {
    opening = false;
  }
}

async function openMicrophone(link) {
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
  if (!link.isReady()) { // the connection dropped while the browser was opening the microphone
    stream.getTracks().forEach((track) => track.stop());
    ctx.close();
    return;
  }
  const node = new AudioWorkletNode(ctx, "pcm-capture", { channelCount: 1, channelCountMode: "explicit" });
  node.port.onmessage = (event) => { if (link.send(event.data) && capture) capture.sent += 1; };
  ctx.createMediaStreamSource(stream).connect(node);
  // Connected to the output so the browser keeps pulling it; the worklet writes silence there.
  node.connect(ctx.destination);
  capture = { ctx, stream, node, sent: 0, link };
  stats.captureSampleRate = ctx.sampleRate;
  ui.talk.textContent = "Stop talking";
  ui.talk.setAttribute("aria-pressed", "true");
  setStatus("Listening. Talk whenever you're ready.", "listening");
}

/** Turns the microphone off; by default also tells the server the utterance is over. */
export function stopTalking(sendEnd = true) {
  if (!capture) return;
  const { ctx, stream, node, sent, link } = capture;
  capture = null;
  node.port.onmessage = null;
  stream.getTracks().forEach((track) => track.stop());
  ctx.close();
  ui.talk.textContent = "Start talking";
  ui.talk.setAttribute("aria-pressed", "false");
  if (ui.status.dataset.state === "listening") setStatus("Microphone off. Press Start talking when you're ready.", "idle");
  if (sendEnd && sent > 0) link.endOfSpeech();
}

// ---- playback ---------------------------------------------------------------------------

/** The playback context, made (or resumed) now: call it from a click, when browsers allow audio. */
export function unlockPlayback() {
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

/** Queues one binary frame of PCM16 24 kHz voice right after the one before. */
export function playChunk(arrayBuffer) {
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

/** Silences the voice at once (interrupted, or the connection was lost). */
export function flushPlayback() {
  const stopping = [...player.sources];
  player.sources.clear();
  for (const source of stopping) {
    try { source.stop(); } catch { /* never started: nothing to stop */ }
    source.disconnect();
  }
  player.nextTime = 0;
  stats.audioSourcesActive = 0;
}
