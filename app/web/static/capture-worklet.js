/*
 * Microphone capture for the voice page (AudioWorklet).
 *
 * Turns the microphone's float samples into PCM16 little-endian mono at 16 kHz and posts
 * one ArrayBuffer per ~100 ms (1,600 samples) to the main thread, which sends it as a
 * binary websocket frame (see docs/voice-protocol.md).
 *
 * The page asks for a 16 kHz AudioContext, so usually no resampling happens. If the browser
 * gave another rate, a box filter averages the input samples that fall into each output
 * sample: crude, but it keeps speech intelligible and suppresses most aliasing.
 */

const TARGET_RATE = 16000;
const CHUNK_SAMPLES = 1600; // 100 ms at 16 kHz: small enough for quick replies, few frames.

class PcmCaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    // `sampleRate` is the AudioWorkletGlobalScope's rate: the context's real rate.
    this.ratio = sampleRate / TARGET_RATE;
    this.chunk = new Int16Array(CHUNK_SAMPLES);
    this.filled = 0;
    // Box-filter state, carried across render quanta so block edges leave no clicks.
    this.acc = 0;
    this.count = 0;
    this.pos = 0;
  }

  push(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.filled === CHUNK_SAMPLES) {
      // Transfer, not copy: the main thread owns the buffer from here on.
      const out = this.chunk;
      this.port.postMessage(out.buffer, [out.buffer]);
      this.chunk = new Int16Array(CHUNK_SAMPLES);
      this.filled = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const channels = input.length;
    const frames = input[0].length;
    for (let i = 0; i < frames; i++) {
      // Mix down to mono; most microphones give one channel anyway.
      let sample = 0;
      for (let c = 0; c < channels; c++) sample += input[c][i];
      sample /= channels;
      if (this.ratio === 1) {
        this.push(sample);
        continue;
      }
      this.acc += sample;
      this.count += 1;
      this.pos += 1;
      if (this.pos >= this.ratio) {
        // A loop, not an if: a context slower than 16 kHz repeats samples (sample-and-hold).
        const average = this.acc / this.count;
        while (this.pos >= this.ratio) {
          this.pos -= this.ratio;
          this.push(average);
        }
        this.acc = 0;
        this.count = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCaptureProcessor);
