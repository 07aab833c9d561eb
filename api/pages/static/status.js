// The hosted status page: poll its state with backoff and rebuild the content in place.
// Polls after 1 s, doubling to 10 s while nothing changes and back to 1 s on a change;
// stops once the page reaches its last step. Errors of the link itself (expired, not
// valid) reload the page, which the server answers with the page that explains them.
"use strict";
(function () {
  const root = document.getElementById("status");
  if (!root) return;
  const token = root.dataset.view;
  const stateUrl = root.dataset.stateUrl + "?view=" + encodeURIComponent(token);
  const STATE_LABELS = { done: "Done", current: "Now", todo: "Next" };
  const FIRST_DELAY = 1000;
  const MAX_DELAY = 10000;
  let delay = FIRST_DELAY;
  let last = null;

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderNow(view) {
    const now = document.getElementById("status-now");
    const parts = [
      element("h1", { id: "status-heading" }, view.heading),
      element("p", { id: "status-message", class: "lead" }, view.message),
    ];
    if (view.reason) parts.push(element("p", { id: "status-reason", class: "reason" }, view.reason));
    now.replaceChildren(...parts);
  }

  function renderAction(action) {
    const kind = action.primary ? "primary" : "secondary";
    if (action.method === "post") {
      const form = element("form", { method: "post", action: action.url });
      form.append(element("input", { type: "hidden", name: "view", value: token }));
      form.append(element("button", { type: "submit", class: kind }, action.label));
      return form;
    }
    const paragraph = element("p");
    paragraph.append(element("a", { class: "button " + kind, href: action.url }, action.label));
    return paragraph;
  }

  function renderSteps(steps) {
    const list = document.getElementById("status-steps");
    list.replaceChildren(
      ...steps.map((step) => {
        const item = element("li", { class: step.state });
        if (step.state === "current") item.setAttribute("aria-current", "step");
        item.append(element("span", { class: "step-state" }, STATE_LABELS[step.state]));
        item.append(" " + step.label);
        return item;
      })
    );
  }

  function render(view) {
    renderNow(view);
    document.getElementById("status-actions").replaceChildren(...view.actions.map(renderAction));
    renderSteps(view.steps);
    root.dataset.final = view.final ? "true" : "false";
    root.dataset.stage = view.stage;
    const platform = document.title.split(" · ").slice(1).join(" · ");
    document.title = platform ? view.heading + " · " + platform : view.heading;
  }

  function differsFromPage(view) {
    const reason = document.getElementById("status-reason");
    return view.stage !== root.dataset.stage || (view.reason || "") !== (reason ? reason.textContent : "");
  }

  async function poll() {
    let retryAfter = 0;
    try {
      const response = await fetch(stateUrl, {
        headers: { Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
      if (response.status === 404 || response.status === 410) {
        window.location.reload();
        return;
      }
      if (response.ok) {
        const view = await response.json();
        const text = JSON.stringify(view);
        if (text !== last) {
          // The first answer is what the server rendered unless it moved on meanwhile.
          const changed = last === null ? differsFromPage(view) : true;
          last = text;
          if (changed) {
            render(view);
            delay = FIRST_DELAY;
          }
          if (view.final) return;
        }
      } else {
        retryAfter = (Number(response.headers.get("Retry-After")) || 0) * 1000;
      }
    } catch (error) {
      // Offline, or the API restarting: keep trying with the same backoff.
    }
    window.setTimeout(poll, Math.max(delay, retryAfter));
    delay = Math.min(delay * 2, MAX_DELAY);
  }

  if (root.dataset.final !== "true") window.setTimeout(poll, FIRST_DELAY);
})();
