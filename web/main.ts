import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-web";
import { Greeter } from "../gen/helloworld_pb.js";

type Protocol = "connect" | "grpc-web";
type Method = "SayHello" | "StreamHello";

const form = element("call", HTMLFormElement);
const nameInput = element("name", HTMLInputElement);
const tokenInput = element("token", HTMLInputElement);

/**
 * The token field's content as `Authorization: Bearer <token>` on every call
 * (RFC 6750, section 2.1), read when the call starts; nothing when it is
 * empty. It stays in the page: never stored, never logged.
 */
const bearer: Interceptor = (next) => (req) => {
  const token = tokenInput.value.trim();
  if (token !== "") req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

// The page is served by the Greeter's own server, so its origin is the API's
// base URL: same-origin calls need no CORS.
const transports: Record<Protocol, Transport> = {
  connect: createConnectTransport({
    baseUrl: location.origin,
    interceptors: [bearer],
  }),
  "grpc-web": createGrpcWebTransport({
    baseUrl: location.origin,
    interceptors: [bearer],
  }),
};
const protocolNames: Record<Protocol, string> = {
  connect: "Connect",
  "grpc-web": "gRPC-Web",
};

const cancelButton = element("cancel", HTMLButtonElement);
const statusLine = element("status", HTMLElement);
const replyList = element("replies", HTMLOListElement);
const errorLine = element("error", HTMLElement);

for (const span of document.querySelectorAll(".origin")) {
  span.textContent = location.origin;
}

/** The call in flight, if any; a new call cancels it. */
let running: AbortController | undefined;

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const button = event.submitter;
  if (!(button instanceof HTMLButtonElement)) return;
  const method = button.value as Method;
  const protocol = new FormData(form).get("protocol") as Protocol;
  void call(method, protocol, nameInput.value, button);
});

cancelButton.addEventListener("click", () => running?.abort());

/** Make one call and show its replies as they arrive, or its error. */
async function call(
  method: Method,
  protocol: Protocol,
  name: string,
  button: HTMLButtonElement,
): Promise<void> {
  running?.abort();
  const abort = new AbortController();
  running = abort;
  const label = `${method} over ${protocolNames[protocol]}`;
  const client = createClient(Greeter, transports[protocol]);
  const start = performance.now();
  let count = 0;
  replyList.replaceChildren();
  showError(undefined);
  form.dataset.state = "running";
  cancelButton.disabled = false;
  statusLine.textContent = `${label}: waiting for the server…`;
  try {
    if (method === "SayHello") {
      const reply = await client.sayHello({ name }, { signal: abort.signal });
      addReply(reply.message, performance.now() - start);
      count++;
    } else {
      for await (const reply of client.streamHello(
        { name },
        { signal: abort.signal },
      )) {
        if (running !== abort) break;
        addReply(reply.message, performance.now() - start);
        count++;
        statusLine.textContent = `${label}: ${plural(count, "reply", "replies")} so far, streaming…`;
      }
    }
    finish(
      abort,
      button,
      "done",
      `${label}: ${plural(count, "reply", "replies")} in ${seconds(performance.now() - start)}.`,
    );
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code === Code.Canceled && abort.signal.aborted) {
      finish(
        abort,
        button,
        "cancelled",
        `${label}: cancelled after ${plural(count, "reply", "replies")}.`,
      );
      return;
    }
    finish(
      abort,
      button,
      "error",
      `${label} failed after ${seconds(performance.now() - start)}.`,
      err,
    );
  }
}

/**
 * Show how a call ended, unless a newer call has taken over the page (the
 * older one then ends as cancelled, and must not overwrite the newer one).
 */
function finish(
  abort: AbortController,
  button: HTMLButtonElement,
  state: "done" | "cancelled" | "error",
  status: string,
  err?: ConnectError,
): void {
  if (running !== abort) return;
  running = undefined;
  statusLine.textContent = status;
  if (err !== undefined) showError(err);
  // A disabled button drops keyboard focus; hand it back to the button that started the call.
  if (document.activeElement === cancelButton) button.focus();
  cancelButton.disabled = true;
  form.dataset.state = state;
}

function addReply(message: string, elapsedMs: number): void {
  const item = document.createElement("li");
  const text = document.createElement("span");
  text.className = "message";
  text.textContent = message;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = `+${seconds(elapsedMs)}`;
  item.append(text, " ", time);
  replyList.append(item);
}

/** Show a call's error with its code, as gRPC names it, or clear it. */
function showError(err: ConnectError | undefined): void {
  if (err === undefined) {
    errorLine.hidden = true;
    errorLine.textContent = "";
    return;
  }
  const code = document.createElement("strong");
  code.className = "code";
  code.textContent = `${codeName(err.code)} (${err.code})`;
  errorLine.replaceChildren("Error ", code, `: ${err.rawMessage}${hint(err)}`);
  errorLine.hidden = false;
}

/** INVALID_ARGUMENT for Code.InvalidArgument: the spelling of the gRPC status codes. */
function codeName(code: Code): string {
  return (Code[code] ?? "UNKNOWN")
    .replace(/(?<=[a-z])(?=[A-Z])/g, "_")
    .toUpperCase();
}

/** fetch reports a server that is down as a bare "Failed to fetch"; say what it likely means. */
function hint(err: ConnectError): string {
  return err.cause instanceof TypeError
    ? " (the request did not reach the server: is it running?)"
    : "";
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function element<T extends HTMLElement>(
  id: string,
  type: { new (): T; prototype: T },
): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`the page has no #${id}`);
  return el;
}
