// The workbench's only script (the Content-Security-Policy allows no inline code): hide missing faces, confirm
// deletions, and fill the live page from the server-sent decisions.
"use strict";

function hideWhenMissing(img) {
  if (img.complete && img.naturalWidth === 0) img.classList.add("broken");
  img.addEventListener("error", () => img.classList.add("broken"));
}

function confirmBeforeSubmit(form) {
  form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
}

function followDecisions(table) {
  const feed = new EventSource("/events");
  feed.onopen = () => { table.dataset.feed = "open"; };
  feed.onmessage = (event) => {
    const d = JSON.parse(event.data);
    const row = table.insertRow(1);
    row.className = "decision";
    const who = d.cluster_id == null ? "-" : (d.name || "face " + d.cluster_id);
    const cells = [d.status, who, d.distance == null ? "-" : Math.max(d.distance, 0).toFixed(3), d.sequence_id,
                   (d.first_frame ?? "") + "–" + (d.last_frame ?? "")];
    cells.forEach((text, i) => {
      const cell = row.insertCell(i);
      if (i === 1 && d.cluster_id != null) {
        const link = document.createElement("a"); link.href = "/identity/" + d.cluster_id; link.textContent = text; cell.appendChild(link);
      } else { cell.textContent = text; }
    });
  };
}

document.querySelectorAll("img.face").forEach(hideWhenMissing);
document.querySelectorAll("form[data-confirm]").forEach(confirmBeforeSubmit);
const feed = document.getElementById("feed");
if (feed) followDecisions(feed);
