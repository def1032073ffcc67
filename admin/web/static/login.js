// login.js -- the sign-in page: say so when the token given was wrong (/login?failed=1).
"use strict";
if (new URLSearchParams(location.search).get("failed") === "1")
  document.getElementById("login-failed").hidden = false;
