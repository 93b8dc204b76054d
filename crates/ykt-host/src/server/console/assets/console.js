// ykt console: the only script. Asks before a destructive action (forms with data-confirm).
"use strict";
document.addEventListener("submit", function (e) {
  var form = e.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    e.preventDefault();
  }
});
