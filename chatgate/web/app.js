// The chat page: sign-in, assistants as tabs, a conversation list per assistant, and the
// conversation itself with history paging. Sending and streaming live in composer.js, picking
// answers up again in resume.js; layout.js draws the page around the conversation.

import { ApiError, KEYS, getJSON, sendJSON, storage, uuid } from "./api.js";
import { Composer } from "./composer.js";
import { wireErase } from "./erase.js";
import { wireExport } from "./export.js";
import {
  $,
  clearNotice,
  closeDrawer,
  hideLoading,
  renderEmpty,
  renderHeader,
  renderOlder,
  renderTabs,
  showLoading,
  showNotice,
  wireDrawer,
  wireNotice,
  wireTabs,
} from "./layout.js";
import { HandoffWatch, unseen } from "./handoff.js";
import { watchUnfinished } from "./resume.js";
import { Sidebar } from "./sidebar.js";
import { Timeline } from "./timeline.js";
import { describeError } from "./words.js";

const PAGE = 30; // messages per history page

const state = {
  assistants: [],
  assistant: null, // the Assistant whose tab is selected
  session: null, // the Session on screen
  messages: [], // what the timeline shows, oldest first
  nextBefore: null,
  loadingOlder: false,
  pagedBack: false, // older pages were loaded: the top of the list is worth saying
  generation: 0, // bumped whenever another session opens, so late answers are dropped
};

const timeline = new Timeline({ scroller: $("scroller"), list: $("messages"), empty: $("empty") });
const handoff = new HandoffWatch({
  onPage: (sessionId, page) => {
    if (!state.session || state.session.id !== sessionId || composer.streams.has(sessionId)) return;
    const fresh = unseen(state.messages, page).map(fromServer);
    state.messages = [...state.messages, ...fresh];
    for (const message of fresh) timeline.append(message);
  },
  onSession: (session) => sessionChanged(session),
});

// ---------- errors ----------

/** Says what went wrong in plain words; a refused sign-in goes back to the sign-in form. */
function handleError(error) {
  if (error instanceof ApiError && error.status === 401) {
    showSignIn("Your sign-in has expired or was not accepted. Please sign in again.");
    return;
  }
  if (!(error instanceof ApiError)) console.error(error);
  const words = error instanceof ApiError ? describeError(error) : "Something went wrong. Please try again.";
  showNotice(words, { traceId: error.traceId });
}

// ---------- start and sign-in ----------

function showOnly(which) {
  $("boot").hidden = which !== "boot";
  $("signin").hidden = which !== "signin";
  $("app").hidden = which !== "app";
}

function showSignIn(message = "") {
  composer.abortAll();
  showOnly("signin");
  $("signin-error").textContent = message;
  $("signin-token").value = "";
  $("signin-token").focus();
}

async function boot() {
  showOnly("boot");
  $("boot-text").textContent = "Loading chatgate…";
  $("boot-retry").hidden = true;
  let assistants;
  try {
    assistants = (await getJSON("/v1/assistants")).data;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showSignIn(storage.get(KEYS.token) ? "Your sign-in has expired. Please sign in again." : "");
      return;
    }
    $("boot-text").textContent = describeError(error);
    $("boot-retry").hidden = false;
    return;
  }
  state.assistants = assistants;
  $("sign-out").hidden = !storage.get(KEYS.token);
  showOnly("app");
  if (!assistants.length) {
    $("chat-title").textContent = "No assistants yet";
    $("chat-subtitle").textContent = "Ask an administrator to add one.";
    return;
  }
  await resume();
}

/** Back to the conversation of the last visit, else the last assistant's latest one. */
async function resume() {
  const stored = storage.get(KEYS.session);
  if (stored) {
    try {
      const session = await getJSON(`/v1/sessions/${encodeURIComponent(stored)}`);
      if (findAssistant(session.assistant_id)) {
        await openSession(session);
        return;
      }
    } catch (error) {
      // Anything but "no such conversation" may pass: keep the id for the next try.
      if (!(error instanceof ApiError) || ![404, 422].includes(error.status)) return handleError(error);
    }
    storage.set(KEYS.session, null); // deleted meanwhile, or another user's
  }
  const last = findAssistant(storage.get(KEYS.assistant)) || state.assistants[0];
  await switchAssistant(last.id, { force: true });
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("signin-token").value.trim();
  if (!token) {
    $("signin-error").textContent = "Paste your access token or API key first.";
    return;
  }
  $("signin-submit").disabled = true;
  $("signin-submit").textContent = "Signing in…";
  storage.set(KEYS.token, token);
  try {
    await getJSON("/v1/assistants");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      storage.set(KEYS.token, null);
      $("signin-error").textContent = `That token or key was not accepted (${error.message}).`;
    } else {
      $("signin-error").textContent = describeError(error);
    }
    return;
  } finally {
    $("signin-submit").disabled = false;
    $("signin-submit").textContent = "Sign in";
  }
  await boot();
});

$("sign-out").addEventListener("click", () => {
  storage.set(KEYS.token, null);
  storage.set(KEYS.session, null);
  state.session = null;
  state.generation += 1;
  showSignIn("You are signed out.");
});

$("boot-retry").addEventListener("click", () => boot());

// ---------- assistants ----------

function findAssistant(id) {
  return state.assistants.find((a) => a.id === id) || null;
}

wireTabs((id) => switchAssistant(id));

/** Brings back the assistant's latest conversation (or a new one) with its own context. */
async function switchAssistant(assistantId, { force = false } = {}) {
  if (!force && state.assistant && state.assistant.id === assistantId && state.session) return;
  const generation = ++state.generation;
  state.assistant = findAssistant(assistantId);
  state.session = null; // nothing is sent until the assistant's conversation is open
  renderTabs(state);
  showLoading(timeline, "Opening the conversation…");
  try {
    const result = await sendJSON("POST", "/v1/switch-assistant", { assistant_id: assistantId });
    if (generation !== state.generation) return;
    await openSession(result.session);
  } catch (error) {
    if (generation === state.generation) {
      hideLoading();
      handleError(error);
    }
  }
}

// ---------- the conversation ----------

async function openSession(session) {
  const generation = ++state.generation;
  clearNotice();
  state.session = session;
  handoff.watch(session);
  state.assistant = findAssistant(session.assistant_id);
  state.messages = [];
  state.nextBefore = null;
  state.loadingOlder = false;
  state.pagedBack = false;
  storage.set(KEYS.session, session.id);
  storage.set(KEYS.assistant, session.assistant_id);
  timeline.setAssistantName(state.assistant ? state.assistant.name : "Assistant");
  renderTabs(state);
  renderHeader(state);
  composer.sync();
  sidebar.load(session.assistant_id);
  showLoading(timeline, "Loading the conversation…");
  let page;
  try {
    page = await getJSON(`/v1/history/${session.id}?limit=${PAGE}`, { cache: "no-cache" });
  } catch (error) {
    if (generation !== state.generation) return;
    hideLoading();
    if (error instanceof ApiError && error.status === 404) {
      storage.set(KEYS.session, null);
      showNotice(describeError(error));
      return switchAssistant(session.assistant_id, { force: true });
    }
    return handleError(error);
  }
  if (generation !== state.generation) return;
  hideLoading();
  state.messages = composer.adopt(session.id, page.data.map(fromServer));
  state.nextBefore = page.has_more ? page.next_before : null;
  timeline.setMessages(state.messages);
  renderOlder(state, loadOlder);
  renderEmpty(timeline, state);
  composer.sync();
  fillViewport();
  // Answers still being written (before a reload, or by another tab) go on growing here.
  watchUnfinished({
    sessionId: session.id,
    composer,
    timeline,
    messages: () => state.messages,
    onScreen: () => generation === state.generation,
  });
}

/** The session on screen as the server has it now (its title, its hand-off). */
function sessionChanged(session) {
  if (!state.session || state.session.id !== session.id) return;
  state.session = { ...state.session, ...session };
  renderHeader(state);
  handoff.watch(state.session);
}

function fromServer(message) {
  return { ...message, key: message.id };
}

async function loadOlder() {
  if (state.loadingOlder || !state.nextBefore || !state.session) return;
  const generation = state.generation;
  state.loadingOlder = true;
  renderOlder(state, loadOlder);
  try {
    const session = state.session.id;
    const page = await getJSON(
      `/v1/history/${session}?limit=${PAGE}&before=${encodeURIComponent(state.nextBefore)}`,
      { cache: "no-cache" },
    );
    if (generation !== state.generation) return;
    const older = page.data.map(fromServer);
    state.messages = [...older, ...state.messages];
    state.nextBefore = page.has_more ? page.next_before : null;
    state.loadingOlder = false;
    state.pagedBack = true;
    renderOlder(state, loadOlder);
    timeline.prepend(older);
  } catch (error) {
    if (generation !== state.generation) return;
    state.loadingOlder = false;
    renderOlder(state, loadOlder);
    handleError(error);
  }
}

/** A first page shorter than the screen gives nothing to scroll: load more until it fills. */
function fillViewport() {
  const scroller = $("scroller");
  if (state.nextBefore && scroller.scrollHeight <= scroller.clientHeight + 8) {
    loadOlder().then(() => requestAnimationFrame(fillViewport));
  }
}

$("scroller").addEventListener(
  "scroll",
  () => {
    if ($("scroller").scrollTop < 120) loadOlder();
  },
  { passive: true },
);

// ---------- conversations ----------

async function newConversation() {
  if (!state.assistant) return;
  closeDrawer();
  if (state.session && state.messages.length === 0 && !state.nextBefore) {
    $("composer-input").focus(); // this one is still empty: no need for another
    return;
  }
  try {
    const session = await sendJSON("POST", "/v1/sessions", { assistant_id: state.assistant.id, id: uuid() });
    await openSession(session);
    $("composer-input").focus();
  } catch (error) {
    handleError(error);
  }
}

const sidebar = new Sidebar({
  list: $("session-list"),
  more: $("more-sessions"),
  status: $("sessions-status"),
  dialog: $("dialog"),
  current: () => state.session,
  onOpen: async (session) => {
    closeDrawer();
    if (state.session && session.id === state.session.id) return;
    await openSession(session);
  },
  onRenamed: (session) => {
    if (state.session && state.session.id === session.id) {
      state.session = { ...state.session, title: session.title };
      renderHeader(state);
    }
  },
  onDeleted: async (session) => {
    if (state.session && state.session.id === session.id) {
      storage.set(KEYS.session, null);
      state.session = null;
      await switchAssistant(session.assistant_id, { force: true });
    }
  },
  onError: handleError,
});

$("new-session").addEventListener("click", newConversation);

wireDrawer();
wireNotice();

// ---------- sending ----------

const composer = new Composer({
  form: $("composer"),
  input: $("composer-input"),
  send: $("send"),
  stop: $("stop"),
  timeline,
  view: {
    session: () => state.session,
    assistant: () => state.assistant,
    messages: () => state.messages,
    setMessages: (messages) => {
      state.messages = messages;
      renderEmpty(timeline, state);
      renderOlder(state, loadOlder);
    },
    titleChanged: sessionChanged,
    refreshList: () => state.assistant && sidebar.load(state.assistant.id, { quiet: true }),
    showNotice,
    clearNotice,
    handleError,
  },
});

wireExport({
  buttons: [...document.querySelectorAll("[data-export-format]")],
  status: $("export-status"),
  onError: handleError,
});

wireErase({
  button: $("erase-data"),
  status: $("erase-status"),
  ask: (question) => sidebar.ask(question),
  onErased: async () => {
    // Nothing of theirs is left: the page starts again with a new, empty conversation.
    storage.set(KEYS.session, null);
    state.session = null;
    state.messages = [];
    if (!state.assistant) return;
    await switchAssistant(state.assistant.id, { force: true });
    await sidebar.load(state.assistant.id, { quiet: true });
  },
  onError: handleError,
});

boot();
