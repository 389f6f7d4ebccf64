// "Export my data": GET /v1/me/export with the page's own credentials (the stored bearer token,
// which a plain link could not send), saved under the name the server gives. The browser holds
// the file as a blob until it is saved (Chromium keeps large ones on disk, not in memory).

import { request } from "./api.js";

const FALLBACK_NAMES = { json: "chatgate-export.json", markdown: "chatgate-export.zip" };

function fileNameOf(response, format) {
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  return match ? match[1] : FALLBACK_NAMES[format];
}

/** Downloads the caller's export in this format ("json" or "markdown"); throws ApiError. */
export async function downloadExport(format) {
  const response = await request(`/v1/me/export?format=${encodeURIComponent(format)}`, {
    accept: format === "json" ? "application/json" : "application/zip",
  });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = fileNameOf(response, format);
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started from the blob; give it time before letting the blob go.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Wires the export buttons (each with data-export-format) and the status line under them. */
export function wireExport({ buttons, status, onError }) {
  for (const button of buttons) {
    button.addEventListener("click", async () => {
      const format = button.dataset.exportFormat;
      for (const each of buttons) each.disabled = true;
      status.textContent = "Preparing your export…";
      try {
        await downloadExport(format);
        status.textContent = "Your export has been downloaded.";
      } catch (error) {
        status.textContent = "";
        onError(error);
      } finally {
        for (const each of buttons) each.disabled = false;
      }
    });
  }
}
