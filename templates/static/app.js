// Progressive enhancement only: every action works without this file.
"use strict";

// "/" focuses the search box, as on most sites with one.
document.addEventListener("keydown", (event) => {
  const search = document.getElementById("q");
  if (event.key === "/" && search && document.activeElement !== search) {
    event.preventDefault();
    search.focus();
  }
});
