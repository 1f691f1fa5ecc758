/*
 * The conversation log: one entry per turn with what the person and the companion said (words
 * replaced in place as they firm up), typed lines shown before the server numbers their turn,
 * the "Drew on N memories" note under a turn, and the polite announcer for finished lines.
 */
import { humanize, ui } from "./page.js";

const turns = new Map(); // turn number -> {li, user, assistant, memories}
let pendingTyped = null; // a typed line shown before the server numbers its turn

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

/** A "transcript" frame: the whole text of one side of a turn so far. */
export function showLine(frame) {
  if (typeof frame.text !== "string" || !Number.isFinite(frame.turn)) return;
  const role = frame.role === "user" ? "user" : "assistant";
  const line = entryFor(frame.turn, frame)[role];
  setWords(line, frame.text, frame.final); // whole text, not a delta: replace
  if (frame.final && frame.text) {
    ui.announcer.textContent = `${role === "user" ? "You" : "Companion"} said: ${frame.text}`;
  }
}

/** A line the person typed and the page just sent; its turn number comes with the server's answer. */
export function showTyped(text) {
  const entry = newEntry();
  setWords(entry.user, text, true);
  ui.transcript.append(entry.li);
  pendingTyped = { text: text.trim(), entry };
}

/** A "memory" frame: which past moments the companion drew on for a turn, and why it suggested what it did. */
export function showMemories(frame) {
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
