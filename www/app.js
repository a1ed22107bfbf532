/* memsync UI: small progressive enhancements; every page works without it. */
(function () {
  "use strict";
  // Live progress: pages with data-live reload while a sync runs.
  var live = document.querySelector("[data-live]");
  if (live) {
    setTimeout(function () { location.reload(); }, 2000);
  }
  // Confirm before actions marked data-confirm.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
    });
  });
  // Filter selects submit their form at once.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
})();
