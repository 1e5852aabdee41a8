// The console's entry: sign-in, then orders, live events and the platform's health.

import "./style.css";

import { ApiClient, SessionTokenStore } from "./api";
import { byId } from "./dom";
import { HealthView } from "./health";
import { LiveEvents, type LiveState } from "./live";
import { Notices } from "./notices";
import { OrdersView } from "./orders";
import { ApiError } from "./problem";
import { seconds } from "./format";
import { h } from "./dom";
import { shortId } from "./format";

const notices = new Notices(byId("notices"));
const api = new ApiClient(new SessionTokenStore(sessionStorage), (kind, text) => notices.show(kind, text));
const orders = new OrdersView(api, notices);
const health = new HealthView(api);
const scheme = location.protocol === "https:" ? "wss" : "ws";
const live = new LiveEvents({
  token: () => api.accessToken(),
  refresh: () => api.refreshTokens(),
  wsUrl: `${scheme}://${location.host}/ws/events`,
  sseUrl: "/api/v1/events",
  onEvent: (arrival) => {
    const order = arrival.event.payload.order;
    byId("feed").prepend(
      h(
        "li",
        { "data-event-type": arrival.event.type },
        `${arrival.event.type} · order ${order ? shortId(order.id) : "?"} · ${order?.status ?? ""} · arrived in ${arrival.latencyMs} ms over ${arrival.transport}`,
      ),
    );
    orders.arrived(arrival);
  },
  onState: showLiveState,
});

function showLiveState(state: LiveState): void {
  const badge = byId("live-state");
  badge.hidden = state.status === "closed";
  badge.className = `live ${state.status}`;
  badge.dataset.status = state.status;
  if (state.status === "connecting") badge.textContent = `live: connecting (${state.transport})`;
  if (state.status === "open") {
    badge.textContent = `live: connected (${state.transport})`;
    if (state.reconnected) {
      notices.show("info", `Live events reconnected over ${state.transport}; reloading your orders to catch up.`);
      void orders.load();
    }
  }
  if (state.status === "reconnecting") {
    badge.textContent = `live: reconnecting in ${seconds(state.delayMs)} (attempt ${state.attempt})`;
    notices.show("warn", `Live events: ${state.reason}; reconnecting in ${seconds(state.delayMs)} (attempt ${state.attempt}).`);
  }
}

async function enter(): Promise<void> {
  try {
    const me = await api.me();
    byId("who").textContent = me.display_name ? `${me.display_name} <${me.email}>` : me.email;
  } catch (error) {
    if (error instanceof ApiError && error.kind === "unauthorized") {
      leave();
      return;
    }
    notices.failure("Loading your profile failed", error);
  }
  byId("auth-view").hidden = true;
  byId("app-view").hidden = false;
  byId("logout").hidden = false;
  live.start();
  health.start();
  await orders.load();
}

function leave(): void {
  live.stop();
  health.stop();
  api.signOut();
  byId("who").textContent = "";
  byId("auth-view").hidden = false;
  byId("app-view").hidden = true;
  byId("logout").hidden = true;
}

function field(form: HTMLFormElement, name: string): string {
  return String(new FormData(form).get(name) ?? "");
}

/** After a 429, keep the form's button off and count down the Retry-After. */
function holdOff(form: HTMLFormElement, error: unknown): void {
  if (!(error instanceof ApiError) || error.kind !== "rate_limited") return;
  const button = form.querySelector("button[type=submit]") as HTMLButtonElement;
  const wait = form.querySelector(".wait") as HTMLElement | null;
  let left = error.retryAfterSeconds ?? 1;
  button.disabled = true;
  const tick = (): void => {
    if (wait) {
      wait.hidden = left <= 0;
      wait.textContent = `Rate limited (429): try again in ${left} s (Retry-After).`;
    }
    if (left <= 0) {
      button.disabled = false;
      return;
    }
    left -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}

const loginForm = byId<HTMLFormElement>("login-form");
loginForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void (async () => {
    try {
      await api.logIn(field(loginForm, "email"), field(loginForm, "password"));
      await enter();
    } catch (error) {
      notices.failure("Login failed", error);
      holdOff(loginForm, error);
    }
  })();
});

const signupForm = byId<HTMLFormElement>("signup-form");
signupForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void (async () => {
    const email = field(signupForm, "email");
    const password = field(signupForm, "password");
    try {
      await api.signUp(email, password, field(signupForm, "display_name"));
      notices.show("info", `Signed up ${email}.`);
      await api.logIn(email, password);
      await enter();
    } catch (error) {
      notices.failure("Sign-up failed", error);
      holdOff(signupForm, error);
    }
  })();
});

byId("logout").addEventListener("click", leave);

if (api.signedIn) void enter();
