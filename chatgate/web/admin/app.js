// The operators' console: signs in with the chat page's token, shows nothing but a refusal to
// anyone who is not an admin, and draws one view at a time, chosen by the address's hash
// (#assistants, #knowledge, #keys, #usage, #audit, #handoffs; a view's own part after a "/").

import { ApiError, KEYS, storage, whoAmI } from "./api.js";
import { errorText } from "./ui.js";

const VIEWS = {
  assistants: () => import("./assistants.js"),
  knowledge: () => import("./knowledge.js"),
  keys: () => import("./keys.js"),
  usage: () => import("./usage.js"),
  audit: () => import("./audit.js"),
  handoffs: () => import("./handoffs.js"),
};
const TITLES = {
  assistants: "Assistants",
  knowledge: "Knowledge bases",
  keys: "API keys",
  usage: "Usage & cost",
  audit: "Audit log",
  handoffs: "Hand-offs",
};

const $ = (id) => document.getElementById(id);
let signedIn = false;
let leaveView = null; // what the current view stops when another is drawn (timers, requests)
let drawn = 0;

function showOnly(which) {
  for (const id of ["boot", "signin", "denied", "console"]) $(id).hidden = id !== which;
}

function showSignIn(message = "") {
  signedIn = false;
  stopView();
  $("view").replaceChildren();
  showOnly("signin");
  $("signin-error").textContent = message;
  $("signin-token").value = "";
  $("signin-token").focus();
}

function stopView() {
  if (leaveView) leaveView();
  leaveView = null;
}

/** The hash as [view, rest]: "#assistants/support" -> ["assistants", "support"]; the rest is
 * left encoded for its view to read. */
function route() {
  const hash = location.hash.replace(/^#/, "");
  const slash = hash.indexOf("/");
  const view = slash === -1 ? hash : hash.slice(0, slash);
  return VIEWS[view] ? [view, slash === -1 ? "" : hash.slice(slash + 1)] : ["assistants", ""];
}

async function draw({ focus = true } = {}) {
  if (!signedIn) return;
  stopView();
  const [view, rest] = route();
  const turn = ++drawn;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${TITLES[view]} · chatgate console`;
  const root = $("view");
  root.dataset.view = view;
  root.replaceChildren();
  let module;
  try {
    module = await VIEWS[view]();
  } catch (error) {
    root.textContent = `This view could not be loaded: ${error}`;
    return;
  }
  if (turn !== drawn) return; // another view was asked for meanwhile
  const controller = new AbortController();
  const stop = module.render(root, rest, controller.signal);
  leaveView = () => {
    controller.abort();
    if (typeof stop === "function") stop();
  };
  if (focus) {
    const heading = root.querySelector("h1");
    if (heading) heading.focus({ preventScroll: true });
  }
}

function setNav(open) {
  $("nav").classList.toggle("open", open);
  $("nav-toggle").setAttribute("aria-expanded", String(open));
  $("nav-toggle").setAttribute("aria-label", open ? "Hide the menu" : "Show the menu");
}

async function boot() {
  showOnly("boot");
  $("boot-text").textContent = "Loading the console…";
  $("boot-retry").hidden = true;
  let who;
  try {
    who = await whoAmI();
  } catch (error) {
    $("boot-text").textContent =
      error instanceof ApiError && error.status === 0 ? "Can't reach chatgate right now." : errorText(error);
    $("boot-retry").hidden = false;
    return;
  }
  if (who === "signin") {
    showSignIn(
      storage.get(KEYS.token) ? "Your sign-in has expired or was not accepted. Please sign in again." : "",
    );
    return;
  }
  if (who === "denied") {
    signedIn = false;
    showOnly("denied");
    $("denied-sign-out").focus();
    return;
  }
  signedIn = true;
  showOnly("console");
  $("sign-out").hidden = !storage.get(KEYS.token);
  if (!location.hash) history.replaceState(null, "", "#assistants");
  await draw({ focus: false });
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("signin-token").value.trim();
  if (!token) {
    $("signin-error").textContent = "Paste your access token or API key first.";
    return;
  }
  storage.set(KEYS.token, token);
  $("signin-submit").disabled = true;
  try {
    const who = await whoAmI();
    if (who === "signin") {
      storage.set(KEYS.token, null);
      $("signin-error").textContent = "That token or key was not accepted.";
      return;
    }
    await boot();
  } catch (error) {
    $("signin-error").textContent = errorText(error);
  } finally {
    $("signin-submit").disabled = false;
  }
});

function signOut() {
  storage.set(KEYS.token, null);
  showSignIn("You are signed out.");
}

$("sign-out").addEventListener("click", signOut);
$("denied-sign-out").addEventListener("click", signOut);
$("boot-retry").addEventListener("click", boot);
$("nav-toggle").addEventListener("click", () => setNav(!$("nav").classList.contains("open")));
$("nav").addEventListener("click", (event) => {
  if (event.target.closest("a")) setNav(false);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && $("nav").classList.contains("open")) {
    setNav(false);
    $("nav-toggle").focus();
  }
});
window.addEventListener("hashchange", () => draw());
// The skip link moves the focus without changing the hash, which names the view.
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  ($("view").querySelector("h1") || $("view")).focus();
});
// A view refused as the caller (ui.js): a token that expired, an admin's rights withdrawn.
window.addEventListener("console:refused", (event) => {
  if (!signedIn) return;
  if (event.detail === 401) {
    showSignIn("Your sign-in has expired. Please sign in again.");
    return;
  }
  signedIn = false;
  stopView();
  $("view").replaceChildren();
  showOnly("denied");
});

boot();
