// The set-password page: a strength hint while typing, and the form posted as JSON.
// Without this script the form still works (a plain POST answered by a redirect or by
// the page again with the error). The password is sent only to onramp's own API.
"use strict";

(function () {
  const form = document.getElementById("set-password");
  if (!form) return;
  const input = document.getElementById("password");
  const meter = document.getElementById("strength-meter");
  const hint = document.getElementById("strength-hint");
  const error = document.getElementById("password-error");
  const result = document.getElementById("result");
  const button = document.getElementById("submit");
  const minLength = Number(form.dataset.minLength);
  const token = form.elements.namedItem("token").value;
  const labels = ["Very weak", "Weak", "Not strong enough", "Strong", "Very strong"];
  let timer = null;
  let asked = 0;

  function showError(message) {
    error.textContent = message || "";
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function showStrength(body) {
    meter.dataset.score = String(body.score);
    const advice = [body.warning, ...(body.suggestions || [])].filter(Boolean).join(" ");
    const verdict = body.acceptable ? labels[body.score] + "." : labels[body.score] + ":";
    hint.textContent = body.acceptable ? verdict : (verdict + " " + advice).trim();
  }

  async function askStrength() {
    const password = input.value;
    const mine = ++asked;
    if (password.length < minLength) {
      meter.dataset.score = "";
      hint.textContent = password ? (minLength - password.length) + " more characters needed." : "";
      return;
    }
    try {
      const response = await fetch(form.dataset.strengthUrl, {
        method: "POST",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify({token: token, password: password}),
      });
      // A later keystroke asked again: its answer wins.
      if (mine !== asked || !response.ok) return;
      showStrength(await response.json());
    } catch (_) {
      // The hint is a help only; the server checks the password when it is sent.
    }
  }

  input.addEventListener("input", function () {
    showError("");
    clearTimeout(timer);
    timer = setTimeout(askStrength, 350);
  });

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (input.value.length < minLength) {
      showError("Use at least " + minLength + " characters.");
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify({token: token, password: input.value}),
      });
      if (response.status === 204) {
        showError("");
        result.textContent = "Your password is set.";
        // A moment to read it, then the dashboard.
        setTimeout(function () { window.location.assign(form.dataset.dashboardUrl); }, 1200);
        return;
      }
      const body = await response.json().catch(function () { return {}; });
      const message = (body.error && body.error.message) || "Something went wrong; please try again.";
      if (response.status === 410 || response.status === 400 || response.status === 404) {
        // The link no longer works: the page for it offers a new one.
        window.location.reload();
        return;
      }
      showError(message);
      input.focus();
    } catch (_) {
      showError("The connection failed; please try again.");
    } finally {
      button.disabled = false;
    }
  });
})();
