// Wire shapes the console reads (mirrors libs/contracts and the gateway's own schemas).

export type OrderStatus = "pending" | "confirmed" | "fulfilled" | "failed" | "cancelled";
export const FINAL_STATUSES: readonly OrderStatus[] = ["fulfilled", "failed", "cancelled"];

export interface OrderItem {
  sku: string;
  quantity: number;
  unit_price_minor: number;
}

export interface OrderCreate {
  items: OrderItem[];
  currency: string;
}

export interface Order extends OrderCreate {
  id: string;
  owner_id: string;
  status: OrderStatus;
  status_reason: string | null;
  amount_minor: number;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface OrderPage {
  items: Order[];
  next_cursor: string | null;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type?: string;
  expires_in: number;
}

export interface UserRead {
  id: string;
  email: string;
  display_name: string | null;
  role: "user" | "admin";
  created_at: string;
}

export interface LiveEvent {
  id: string;
  type: string;
  version: number;
  occurred_at: string;
  payload: { order?: Order; previous_status?: OrderStatus | null; [key: string]: unknown };
}

export interface CheckReport {
  status: string;
  latency_ms?: number;
  error?: string;
  critical?: boolean;
  details?: Record<string, unknown>;
}

export interface ServiceStatus {
  name: string;
  state: "ready" | "not_ready" | "unreachable";
  http_status: number | null;
  latency_ms: number;
  checks: Record<string, CheckReport>;
  error: string | null;
}

export interface BreakerStatus {
  service: string;
  upstream: string;
  state: "closed" | "open" | "half_open";
  failures: number;
  retry_in_seconds: number;
}

export interface OutboxStatus {
  service: string;
  backlog: number;
  oldest_unsent_seconds: number;
}

export interface PlatformStatus {
  services: ServiceStatus[];
  breakers: BreakerStatus[];
  outbox: OutboxStatus[];
}
