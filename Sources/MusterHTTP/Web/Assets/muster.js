// Small improvements only: every page works without this file.
(function () {
  "use strict";
  // The raise form: "Call 911 now" the moment imminent, or a type whose playbook says so, is chosen;
  // only the questions of the chosen type's playbook are shown.
  var form = document.getElementById("raise-form");
  if (form) {
    var type = document.getElementById("type");
    var notice = document.getElementById("call-911");
    var update = function () {
      var option = type.options[type.selectedIndex];
      var imminent = form.querySelector("input[name=severity][value=imminent]:checked");
      var call = imminent || (option && option.getAttribute("data-call911") === "true");
      if (notice) notice.hidden = !call;
      var flags = option ? (option.getAttribute("data-flags") || "").split(" ") : [];
      var shown = 0;
      form.querySelectorAll(".flag").forEach(function (flag) {
        var on = flags.indexOf(flag.getAttribute("data-flag")) >= 0;
        flag.hidden = !on;
        if (!on) flag.querySelector("input").checked = false;
        if (on) shown += 1;
      });
      var set = document.getElementById("flags");
      if (set) set.hidden = shown === 0;
    };
    form.addEventListener("change", update);
    update();
  }
  // Live updates: when the server says something changed, fetch the live part again and swap it in.
  var live = document.getElementById("live-status") || document.getElementById("live-list");
  if (live && window.EventSource && live.getAttribute("data-events")) {
    var source = new EventSource(live.getAttribute("data-events"));
    source.addEventListener("changed", function () {
      fetch(live.getAttribute("data-live"), { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(live.id);
        if (fresh) live.innerHTML = fresh.innerHTML;
      });
    });
  }
})();
