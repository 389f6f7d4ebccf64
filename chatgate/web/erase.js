// "Delete my data": DELETE /v1/me after a clear confirmation. Every conversation, message,
// cached answer and queued task of the signed-in person is erased; the page then starts afresh.

import { sendJSON } from "./api.js";

/** Wires the button: asks first (`ask` is the page's modal question), then erases. */
export function wireErase({ button, status, ask, onErased, onError }) {
  button.addEventListener("click", async () => {
    const yes = await ask({
      title: "Delete all your data?",
      text:
        "Every conversation and message of yours will be erased for good, here and in every " +
        "copy chatgate keeps. This cannot be undone. Export your data first if you want a copy.",
      confirm: "Delete my data",
      danger: true,
    });
    if (yes === null) return;
    button.disabled = true;
    status.textContent = "Deleting your data…";
    try {
      await sendJSON("DELETE", "/v1/me");
      status.textContent = "Your data has been deleted.";
      await onErased();
    } catch (error) {
      status.textContent = "";
      onError(error);
    } finally {
      button.disabled = false;
    }
  });
}
