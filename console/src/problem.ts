// What went wrong with a call, in terms a person can act on: the RFC 9457 problem the
// platform answered, sorted into the failures the console shows differently.

export type FailureKind =
  | "rate_limited" // 429: wait Retry-After seconds
  | "breaker_open" // 503 from an open circuit breaker: the upstream is being spared
  | "unavailable" // any other 503 (or 502/504): the platform cannot answer now
  | "unauthorized" // 401 that a token refresh could not cure
  | "invalid" // 4xx about the request itself (422, 409, 400...)
  | "network" // no answer at all
  | "other";

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  request_id?: string;
  [key: string]: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly kind: FailureKind,
    readonly status: number | null,
    message: string,
    readonly retryAfterSeconds: number | null = null,
    readonly requestId: string | null = null,
    readonly problem: Problem | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Seconds from a Retry-After header: delta-seconds or an HTTP date; null if absent or bad. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null || value.trim() === "") return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const when = Date.parse(trimmed);
  if (Number.isNaN(when)) return null;
  return Math.max(0, Math.ceil((when - now) / 1000));
}

function asProblem(body: unknown): Problem | null {
  return typeof body === "object" && body !== null && !Array.isArray(body)
    ? (body as Problem)
    : null;
}

/** The ApiError for an error answer (`status` >= 400) with its headers and parsed body. */
export function failureOf(status: number, headers: Headers, body: unknown): ApiError {
  const problem = asProblem(body);
  const retryAfter = parseRetryAfter(headers.get("retry-after"));
  const requestId = problem?.request_id ?? headers.get("x-request-id");
  const detail = problem?.detail ?? problem?.title ?? `HTTP ${status}`;
  const wait = retryAfter === null ? "" : ` Retry after ${retryAfter} s.`;
  if (status === 429) {
    return new ApiError(
      "rate_limited",
      status,
      `Too many requests: ${detail}${wait}`,
      retryAfter,
      requestId,
      problem,
    );
  }
  if (status === 503 && /circuit open/i.test(detail)) {
    const upstream = /Upstream '([^']+)'/.exec(detail)?.[1] ?? "a service";
    return new ApiError(
      "breaker_open",
      status,
      `The ${upstream} circuit breaker is open: the gateway is sparing it after repeated failures.${wait}`,
      retryAfter,
      requestId,
      problem,
    );
  }
  if (status === 502 || status === 503 || status === 504) {
    return new ApiError("unavailable", status, `Unavailable (${status}): ${detail}${wait}`, retryAfter, requestId, problem);
  }
  if (status === 401) {
    return new ApiError("unauthorized", status, `Not signed in: ${detail}`, null, requestId, problem);
  }
  if (status >= 400 && status < 500) {
    return new ApiError("invalid", status, `${problem?.title ?? "Refused"} (${status}): ${detail}`, null, requestId, problem);
  }
  return new ApiError("other", status, `HTTP ${status}: ${detail}`, retryAfter, requestId, problem);
}
