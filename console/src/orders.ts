// Orders: the form (with its Idempotency-Key and the retry that shows the replay), the live
// timelines of each order's states, and the caller's orders page by page.

import type { ApiClient } from "./api";
import { byId, chip, h } from "./dom";
import { money, shortId, uuid4 } from "./format";
import type { Arrival } from "./live";
import type { Notices } from "./notices";
import type { Order, OrderCreate } from "./types";

const PAGE_SIZE = 5;

export class OrdersView {
  private lastOrder: OrderCreate | null = null;
  private readonly cursors: (string | null)[] = [null];
  private page = 0;
  private readonly timelines = new Map<string, HTMLElement>();

  constructor(
    private readonly api: ApiClient,
    private readonly notices: Notices,
  ) {
    const form = byId<HTMLFormElement>("order-form");
    this.keyInput.value = uuid4();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.lastOrder = readOrder(form);
      void this.place(this.lastOrder);
    });
    byId("retry-order").addEventListener("click", () => {
      if (this.lastOrder) void this.place(this.lastOrder);
    });
    byId("new-key").addEventListener("click", () => {
      this.keyInput.value = uuid4();
      byId<HTMLButtonElement>("retry-order").disabled = true;
    });
    byId("orders-next").addEventListener("click", () => void this.turn(1));
    byId("orders-prev").addEventListener("click", () => void this.turn(-1));
    byId("orders-reload").addEventListener("click", () => void this.load());
  }

  private get keyInput(): HTMLInputElement {
    return byId<HTMLFormElement>("order-form").querySelector("input[name=key]") as HTMLInputElement;
  }

  async place(order: OrderCreate): Promise<void> {
    const result = byId("order-result");
    const key = this.keyInput.value.trim();
    result.className = "result";
    try {
      const { order: placed, replayed } = await this.api.placeOrder(order, key);
      result.replaceChildren(
        replayed
          ? `Replayed: the same order ${placed.id} came back (Idempotent-Replayed: true), no second order.`
          : `Placed order ${placed.id} with Idempotency-Key ${key}: ${placed.status}, ${money(placed.amount_minor, placed.currency)}.`,
      );
      result.dataset.replayed = String(replayed);
      result.dataset.orderId = placed.id;
      byId<HTMLButtonElement>("retry-order").disabled = false;
      this.timeline(placed.id);
      if (this.page === 0) await this.load();
    } catch (error) {
      result.className = "result error";
      result.replaceChildren(this.notices.failure("Placing the order failed", error));
    }
  }

  /** A live event arrived: extend that order's timeline and update its row. */
  arrived({ event, latencyMs }: Arrival): void {
    const order = event.payload.order;
    if (!order) return;
    this.timeline(order.id).append(chip(order.status, `${order.status} · ${latencyMs} ms`));
    const row = document.querySelector(`tr[data-order-id="${CSS.escape(order.id)}"]`);
    const cell = row?.querySelector("td.status");
    if (cell) cell.replaceChildren(chip(order.status));
    else if (this.page === 0) void this.load();
  }

  private timeline(orderId: string): HTMLElement {
    let line = this.timelines.get(orderId);
    if (!line) {
      line = h("li", { "data-order-id": orderId }, h("strong", {}, shortId(orderId)), " ");
      this.timelines.set(orderId, line);
      byId("timelines").prepend(line);
    }
    return line;
  }

  private async turn(step: 1 | -1): Promise<void> {
    const next = this.page + step;
    if (next < 0 || next >= this.cursors.length) return;
    this.page = next;
    await this.load();
  }

  async load(): Promise<void> {
    try {
      const page = await this.api.listOrders(PAGE_SIZE, this.cursors[this.page] ?? null);
      this.cursors.length = this.page + 1;
      if (page.next_cursor) this.cursors.push(page.next_cursor);
      byId("orders").replaceChildren(...page.items.map(row));
      byId("orders-page").textContent = `page ${this.page + 1}`;
      byId<HTMLButtonElement>("orders-prev").disabled = this.page === 0;
      byId<HTMLButtonElement>("orders-next").disabled = page.next_cursor === null;
    } catch (error) {
      this.notices.failure("Loading your orders failed", error);
    }
  }
}

function row(order: Order): HTMLTableRowElement {
  const items = order.items.map((item) => `${item.quantity}× ${item.sku}`).join(", ");
  return h(
    "tr",
    { "data-order-id": order.id },
    h("td", { title: order.id }, shortId(order.id)),
    h("td", { class: "status" }, chip(order.status)),
    h("td", {}, money(order.amount_minor, order.currency)),
    h("td", {}, items),
    h("td", {}, new Date(order.created_at).toLocaleTimeString()),
  );
}

function readOrder(form: HTMLFormElement): OrderCreate {
  const data = new FormData(form);
  return {
    items: [
      {
        sku: String(data.get("sku") ?? ""),
        quantity: Number(data.get("quantity")),
        unit_price_minor: Number(data.get("unit_price_minor")),
      },
    ],
    currency: String(data.get("currency") ?? ""),
  };
}
