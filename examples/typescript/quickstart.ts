// The integrator's quickstart, run against a real server by `make example-ts` (and so in CI):
// sign up, work with an API key, create a project and tasks (safely retried with an
// Idempotency-Key), page through tasks, follow a task live over the WebSocket and resume with
// `since`, handle a problem document, and receive a webhook whose signature the
// `standardwebhooks` package verifies.
//
//   TASKER_URL=http://localhost:8080 node --experimental-websocket build/ts/examples/typescript/quickstart.js
//
// The webhook step needs a server with WEBHOOK_ENCRYPTION_KEY set and WEBHOOK_ALLOW_PRIVATE=true
// (the example's receiver listens on loopback).
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { createTaskerClient, must, ProblemError, type Schemas } from "../../clients/typescript/index.js";

const baseUrl = process.env.TASKER_URL ?? "http://localhost:8080";

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok  ${what}`);
}

// 1. Sign up a tenant (the owner gets an access token), then make an API key for the integration.
const anon = createTaskerClient({ baseUrl });
const slug = `ts-${randomUUID().slice(0, 8)}`;
const signup = must(await anon.POST("/v1/auth/signup", {
  body: { tenant_name: "TS example", tenant_slug: slug, email: "owner@example.com", password: "correct horse battery", name: "Owner" },
}));
const owner = createTaskerClient({ baseUrl, token: signup.tokens.access_token });
const key = must(await owner.POST("/v1/api-keys", { body: { name: "quickstart", role: "admin" } }));
const api = createTaskerClient({ baseUrl, token: key.key });
check((await api.GET("/v1/me")).data?.user.id === signup.user.id, "the API key acts as its creator");

// 2. A team, a project (retried safely with an Idempotency-Key), and five tasks.
const team = must(await api.POST("/v1/teams", { body: { name: "Platform", key: "PLAT" } }));
const idem = randomUUID();
const createProject = () => api.POST("/v1/projects", {
  params: { header: { "Idempotency-Key": idem } },
  body: { team_id: team.id, name: "Website", key: "WEB" },
});
const project = must(await createProject());
const again = must(await createProject());
check(again.id === project.id, "a retried create with the same Idempotency-Key returns the first project");
for (let i = 1; i <= 5; i++) {
  must(await api.POST("/v1/projects/{id}/tasks", { params: { path: { id: project.id } }, body: { title: `Task ${i}`, priority: 2 } }));
}

// 3. Page through the tasks two at a time with the cursor.
const titles: string[] = [];
let cursor: string | undefined;
do {
  const page = must(await api.GET("/v1/projects/{id}/tasks", { params: { path: { id: project.id }, query: { limit: 2, cursor } } }));
  titles.push(...page.items.map((t: Schemas["Task"]) => t.title));
  cursor = page.next_cursor ?? undefined;
} while (cursor);
check(titles.length === 5 && new Set(titles).size === 5, `five tasks over three pages: ${titles.join(", ")}`);

// 4. Problems: every error is an RFC 9457 document with a type, a status and a request id.
const missing = await api.GET("/v1/tasks/{id}", { params: { path: { id: "WEB-999" } } });
check(missing.error?.status === 404 && missing.error.type.endsWith("/not-found") && !!missing.error.request_id,
  `a missing task is a 404 problem (${missing.error?.type})`);
try {
  must(await api.POST("/v1/teams", { body: { name: "", key: "x" } }));
} catch (e) {
  check(e instanceof ProblemError && e.problem.status === 400 && (e.problem.errors?.length ?? 0) > 0,
    `invalid input is a 400 naming its fields (${(e as ProblemError).problem.errors?.map((f) => f.field).join(", ")})`);
}

// 5. ETags: a write with a stale If-Match is refused (412).
const first = await api.GET("/v1/tasks/{id}", { params: { path: { id: "WEB-1" } } });
const etag = first.response.headers.get("ETag") ?? "";
must(await api.PATCH("/v1/tasks/{id}", { params: { path: { id: "WEB-1" }, header: { "If-Match": etag } }, body: { status: "in_progress" } }));
const stale = await api.PATCH("/v1/tasks/{id}", { params: { path: { id: "WEB-1" }, header: { "If-Match": etag } }, body: { status: "done" } });
check(stale.response.status === 412, "a write with a stale ETag is refused with 412");

// 6. Realtime: subscribe to the project, see a change live, then reconnect and resume with
// `since` to get what was missed while away.
type Frame = { type: string; id?: number; event?: string; last_id?: number; data?: { title?: string } };
function connect(): Promise<{ ws: WebSocket; next: (pred: (f: Frame) => boolean) => Promise<Frame> }> {
  const ws = new WebSocket(baseUrl.replace(/^http/, "ws") + "/v1/realtime", ["tasker.v1", `bearer.${key.key}`]);
  const frames: Frame[] = [];
  const waiters: Array<() => void> = [];
  ws.onmessage = (m) => { frames.push(JSON.parse(String(m.data)) as Frame); waiters.splice(0).forEach((w) => w()); };
  const next = async (pred: (f: Frame) => boolean): Promise<Frame> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const i = frames.findIndex(pred);
      if (i >= 0) return frames.splice(i, 1)[0]!;
      if (Date.now() > deadline) throw new Error("no such frame within 10 s");
      await new Promise<void>((r) => { waiters.push(r); setTimeout(r, 200); });
    }
  };
  return new Promise((resolve, reject) => { ws.onopen = () => resolve({ ws, next }); ws.onerror = () => reject(new Error("websocket failed")); });
}
const topic = `project:${project.id}`;
let rt = await connect();
rt.ws.send(JSON.stringify({ type: "subscribe", topic }));
await rt.next((f) => f.type === "subscribed");
must(await api.POST("/v1/projects/{id}/tasks", { params: { path: { id: project.id } }, body: { title: "Live" } }));
const live = await rt.next((f) => f.type === "event" && f.event === "task.created");
check(live.data?.title === "Live", `task.created arrived live (event id ${live.id})`);
rt.ws.close();
must(await api.POST("/v1/projects/{id}/tasks", { params: { path: { id: project.id } }, body: { title: "While away" } }));
rt = await connect();
rt.ws.send(JSON.stringify({ type: "subscribe", topic, since: live.id }));
const missed = await rt.next((f) => f.type === "event" && f.event === "task.created");
check(missed.data?.title === "While away" && (missed.id ?? 0) > (live.id ?? 0), "resuming with since replays what was missed");
rt.ws.close();

// 7. Webhooks: a receiver verifies each delivery with the standardwebhooks package.
let hookUrl!: (url: string) => void;
const listening = new Promise<string>((resolve) => (hookUrl = resolve));
const received = new Promise<{ body: string; headers: IncomingHttpHeaders }>((resolve) => {
  const srv = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => { res.writeHead(204).end(); srv.close(); resolve({ body, headers: req.headers }); });
  });
  srv.listen(0, "127.0.0.1", () => hookUrl(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/tasker`));
});
const endpoint = must(await api.POST("/v1/webhooks", { body: { url: await listening, event_types: ["task.*"] } }));
must(await api.POST("/v1/webhooks/{id}/test", { params: { path: { id: endpoint.id } } }));
const delivery = await received;
const payload = new Webhook(endpoint.secret).verify(delivery.body, {
  "webhook-id": String(delivery.headers["webhook-id"]),
  "webhook-timestamp": String(delivery.headers["webhook-timestamp"]),
  "webhook-signature": String(delivery.headers["webhook-signature"]),
}) as { type: string };
check(payload.type === "webhook.test", "a webhook delivery verifies with the standardwebhooks package");
let tampered = false;
try {
  new Webhook(endpoint.secret).verify(delivery.body.replace("webhook.test", "webhook.tesT"), {
    "webhook-id": String(delivery.headers["webhook-id"]),
    "webhook-timestamp": String(delivery.headers["webhook-timestamp"]),
    "webhook-signature": String(delivery.headers["webhook-signature"]),
  });
} catch {
  tampered = true;
}
check(tampered, "a changed body does not verify");
console.log("quickstart: all checks passed");
